"""The lab kit server: a small LMS for a laptop on the lab network, run from a kit (labs/kit.py).

Trainees check in with the rotating code on the trainer's screen, download the exercises' release
notebooks and upload their work; the trainer keeps the roster with attendance marks and exports the
results for ``lms labs kit import``. Everything is kept in the server's own SQLite file next to the kit
(never the instance database), so a restarted laptop carries on where it stopped. It needs no LMS
instance and no connection: ``lms labs kit serve kit.zip``.

The trainer's pages are opened with a PIN that ``kit serve`` prints at start-up.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import Babel, format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import lms
from labs.checkin import STEP_SECONDS, CodeStatus, checkin_window, current_code, is_late, verify_code
from labs.kit import (
    MAX_UPLOAD_BYTES,
    CheckinRecord,
    Kit,
    KitRefused,
    MarkRecord,
    UploadRecord,
    build_results,
    load_kit,
    write_private,
)
from labs.models import Attendance
from lms.i18n import normalise_locale
from lms.timeutil import utcnow

MARK_LABELS = {
    Attendance.ATTENDED: _l("Present"),
    Attendance.LATE: _l("Late"),
    Attendance.ABSENT: _l("Absent"),
    Attendance.EXCUSED: _l("Excused"),
}

FAILURE_WINDOW = timedelta(minutes=5)
CHECKIN_FAILURES_PER_USERNAME = 5
"""Wrong codes allowed per username in FAILURE_WINDOW (six digits must not be guessable)."""
PIN_FAILURES_PER_ADDRESS = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkin (
    user_id INTEGER PRIMARY KEY, checked_in_at TEXT NOT NULL, method TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mark (
    user_id INTEGER PRIMARY KEY,
    attendance TEXT NOT NULL CHECK (attendance IN ('attended', 'late', 'absent', 'excused')),
    marked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    exercise TEXT NOT NULL,
    filename TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploaded_at TEXT NOT NULL,
    data BLOB NOT NULL,
    UNIQUE (user_id, exercise, sha256)
);
CREATE TABLE IF NOT EXISTS failure (kind TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_failure ON failure (kind, who, at);
"""


def default_data_path(kit_path: Path) -> Path:
    """``kit.zip`` keeps its records in ``kit.sqlite3`` beside it."""
    return kit_path.with_suffix(".sqlite3")


def default_results_path(kit_path: Path) -> Path:
    return kit_path.with_name(f"{kit_path.stem}-results.zip")


class KitStore:
    """The laptop's records for one kit, in a SQLite file of their own."""

    def __init__(self, path: Path, kit: Kit) -> None:
        self.path = path
        self.kit = kit
        try:
            if not path.exists():  # it holds the trainer's PIN and the trainees' records
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            with self._connect() as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise KitRefused(
                _("%(path)s is not a kit server's records file (%(error)s).", path=path, error=exc)
            ) from None
        except OSError as exc:
            raise KitRefused(
                _("Cannot create the records file %(path)s: %(error)s", path=path, error=exc.strerror)
            ) from None
        owner = self._meta_default("kit_id", kit.kit_id)
        if owner != kit.kit_id:
            raise KitRefused(
                _(
                    "%(path)s holds the records of another kit (%(other)s); move it away or choose "
                    "another records file.",
                    path=path,
                    other=owner,
                )
            )
        self.session_secret = self._meta_default("session_secret", secrets.token_hex(32))
        self.trainer_pin = self._meta_default("trainer_pin", f"{secrets.randbelow(10**8):08d}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=15)) as connection:
            connection.row_factory = sqlite3.Row
            with connection:  # one transaction: committed on success, rolled back on error
                yield connection

    def _meta_default(self, key: str, value: str) -> str:
        with self._connect() as connection:
            connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"])

    # check-ins and marks

    def checkin_of(self, user_id: int) -> datetime | None:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT checked_in_at FROM checkin WHERE user_id = ?", (user_id,)
            ).fetchone()
        return datetime.fromisoformat(row["checked_in_at"]) if row else None

    def check_in(self, user_id: int, at: datetime, mark: Attendance) -> bool:
        """Record a check-in (and the mark it earns, unless the trainer marked already); False if the
        trainee had checked in before."""
        with self._connect() as connection:
            added = connection.execute(
                "INSERT OR IGNORE INTO checkin (user_id, checked_in_at, method) VALUES (?, ?, 'code')",
                (user_id, at.isoformat()),
            ).rowcount
            if added:
                connection.execute(
                    "INSERT OR IGNORE INTO mark (user_id, attendance, marked_at) VALUES (?, ?, ?)",
                    (user_id, mark.value, at.isoformat()),
                )
        return bool(added)

    def set_mark(self, user_id: int, mark: Attendance, at: datetime) -> None:
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO mark (user_id, attendance, marked_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET attendance = excluded.attendance, "
                "marked_at = excluded.marked_at WHERE mark.attendance != excluded.attendance",
                (user_id, mark.value, at.isoformat()),
            )

    def checkin_records(self) -> list[CheckinRecord]:
        with self._connect() as connection:
            rows = connection.execute("SELECT * FROM checkin ORDER BY user_id").fetchall()
        return [
            CheckinRecord(
                r["user_id"], self._username(r["user_id"]), datetime.fromisoformat(r["checked_in_at"])
            )
            for r in rows
        ]

    def mark_records(self) -> list[MarkRecord]:
        with self._connect() as connection:
            rows = connection.execute("SELECT * FROM mark ORDER BY user_id").fetchall()
        return [
            MarkRecord(
                r["user_id"],
                self._username(r["user_id"]),
                Attendance(r["attendance"]),
                datetime.fromisoformat(r["marked_at"]),
            )
            for r in rows
        ]

    def _username(self, user_id: int) -> str:
        entry = self.kit.trainee_by_id(user_id)
        return entry.username if entry else str(user_id)

    # uploads

    def add_upload(self, user_id: int, exercise: str, filename: str, data: bytes, at: datetime) -> bool:
        """Keep an uploaded notebook; False when the same bytes were uploaded for it before."""
        with self._connect() as connection:
            return bool(
                connection.execute(
                    "INSERT OR IGNORE INTO upload (user_id, exercise, filename, sha256, size, uploaded_at,"
                    " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user_id,
                        exercise,
                        filename,
                        hashlib.sha256(data).hexdigest(),
                        len(data),
                        at.isoformat(),
                        data,
                    ),
                ).rowcount
            )

    def uploads_of(self, user_id: int) -> list[dict[str, Any]]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT exercise, filename, sha256, size, uploaded_at FROM upload WHERE user_id = ? "
                "ORDER BY uploaded_at",
                (user_id,),
            ).fetchall()
        return [{**dict(r), "uploaded_at": datetime.fromisoformat(r["uploaded_at"])} for r in rows]

    def upload_records(self) -> list[UploadRecord]:
        with self._connect() as connection:
            rows = connection.execute("SELECT * FROM upload ORDER BY id").fetchall()
        return [
            UploadRecord(
                r["user_id"],
                self._username(r["user_id"]),
                r["exercise"],
                r["filename"],
                datetime.fromisoformat(r["uploaded_at"]),
                bytes(r["data"]),
            )
            for r in rows
        ]

    def summary(self) -> dict[int, dict[str, Any]]:
        """Per trainee: check-in time, mark and number of uploads, for the roster page."""
        found: dict[int, dict[str, Any]] = {}
        with self._connect() as connection:
            for r in connection.execute("SELECT user_id, checked_in_at FROM checkin"):
                found.setdefault(r["user_id"], {})["checked_in_at"] = datetime.fromisoformat(
                    r["checked_in_at"]
                )
            for r in connection.execute("SELECT user_id, attendance FROM mark"):
                found.setdefault(r["user_id"], {})["mark"] = Attendance(r["attendance"])
            for r in connection.execute("SELECT user_id, COUNT(*) AS n FROM upload GROUP BY user_id"):
                found.setdefault(r["user_id"], {})["uploads"] = r["n"]
        return found

    # throttling

    def failures(self, kind: str, who: str, now: datetime) -> int:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT COUNT(*) AS n FROM failure WHERE kind = ? AND who = ? AND at > ?",
                (kind, who, (now - FAILURE_WINDOW).isoformat()),
            ).fetchone()
        return int(row["n"])

    def add_failure(self, kind: str, who: str, now: datetime) -> None:
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO failure (kind, who, at) VALUES (?, ?, ?)", (kind, who, now.isoformat())
            )


@dataclass
class KitState:
    kit: Kit
    store: KitStore
    results_path: Path
    clock: Callable[[], datetime]


def _state() -> KitState:
    return current_app.extensions["lab_kit"]


bp = Blueprint("kit", __name__)


def _local(value: datetime | None, pattern: str = "HH:mm") -> str:
    return "" if value is None else format_datetime(value, pattern)


def _select_locale() -> str:
    """The browser's language (Chinese or English), else Chinese."""
    for tag, _quality in request.accept_languages:
        locale = normalise_locale(tag)
        if locale:
            return locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def _trainee() -> Any:
    user_id = session.get("trainee_id")
    return _state().kit.trainee_by_id(user_id) if isinstance(user_id, int) else None


def _page(template: str, status: int = 200, **context: Any):
    state = _state()
    return render_template(template, kit=state.kit, trainee=_trainee(), **context), status


# --- trainees -------------------------------------------------------------------------------------------


@bp.get("/")
def show_checkin():
    state = _state()
    opens, closes = checkin_window(state.kit.starts_at, state.kit.ends_at)
    return _page("labs/kit/checkin.html", opens=opens, closes=closes, username="")


@bp.post("/")
def check_in():
    state = _state()
    kit, now = state.kit, state.clock()
    username = request.form.get("username", "").strip()[:64]
    code = request.form.get("code", "")[:20]
    opens, closes = checkin_window(kit.starts_at, kit.ends_at)

    def refuse(message: str, status: int = 400):
        flash(message, "error")
        return _page("labs/kit/checkin.html", status, opens=opens, closes=closes, username=username)

    if not username:
        return refuse(_("Enter your username."))
    trainee = kit.trainee(username)
    if trainee is None:
        return refuse(_("%(username)s is not on the roster of this lab meeting.", username=username), 404)
    if now < opens:
        return refuse(_("Check-in opens at %(time)s.", time=_local(opens, "yyyy-MM-dd HH:mm")), 403)
    if now >= closes:
        return refuse(_("This lab meeting has ended; check-in is closed."), 403)
    who = trainee.username.casefold()
    if state.store.failures("checkin", who, now) >= CHECKIN_FAILURES_PER_USERNAME:
        return refuse(
            _("Too many wrong codes for this username. Wait a few minutes or see the trainer."), 429
        )
    status, _step = verify_code(kit.checkin_secret, code, now)
    if status != CodeStatus.VALID:
        state.store.add_failure("checkin", who, now)
        message = {
            CodeStatus.MALFORMED: _("Enter the 6 digits shown on the trainer's screen."),
            CodeStatus.EXPIRED: _("That code has expired. Enter the code shown on the screen now."),
        }.get(status, _("That is not the code on the screen. Check the digits and try again."))
        return refuse(message, 400)
    earlier = state.store.checkin_of(trainee.user_id)
    if earlier is None and not trainee.has_seat:
        return refuse(
            _("You have no seat in this lab meeting (you are on the waiting list). Please see the trainer."),
            409,
        )
    session["trainee_id"] = trainee.user_id
    if earlier is not None:
        flash(_("You checked in already at %(time)s.", time=_local(earlier)), "success")
        return redirect(url_for("kit.upload_notebook"))
    mark = Attendance.LATE if is_late(now, kit.starts_at) else Attendance.ATTENDED
    state.store.check_in(trainee.user_id, now, mark)
    flash(
        _("Checked in at %(time)s. Welcome, %(name)s!", time=_local(now), name=trainee.real_name), "success"
    )
    return redirect(url_for("kit.upload_notebook"))


@bp.post("/leave")
def sign_out():
    session.pop("trainee_id", None)
    return redirect(url_for("kit.show_checkin"))


@bp.get("/notebooks/<key>.ipynb")
def download_notebook(key: str):
    kit = _state().kit
    if key not in kit.notebooks:
        abort(404)
    return send_file(
        io.BytesIO(kit.notebooks[key]),
        mimetype="application/x-ipynb+json",
        as_attachment=True,
        download_name=f"{key}.ipynb",
    )


def _notebook_problem(data: bytes) -> str | None:
    try:
        notebook = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return _("The file is not a Jupyter notebook (it is not JSON). Upload the .ipynb file.")
    if (
        not isinstance(notebook, dict)
        or notebook.get("nbformat") != 4
        or not isinstance(notebook.get("cells"), list)
    ):
        return _("The file is not a Jupyter notebook in format 4. Save it again from Jupyter.")
    return None


@bp.route("/upload", methods=["GET", "POST"])
def upload_notebook():
    state = _state()
    trainee = _trainee()
    if trainee is None or state.store.checkin_of(trainee.user_id) is None:
        session.pop("trainee_id", None)
        flash(_("Check in first, then upload your notebook."), "error")
        return redirect(url_for("kit.show_checkin"))

    def page(status: int = 200):
        return _page("labs/kit/upload.html", status, uploads=state.store.uploads_of(trainee.user_id))

    if request.method == "GET":
        return page()
    exercise = state.kit.exercise(request.form.get("exercise", ""))
    if exercise is None:
        flash(_("Choose one of this lab's exercises."), "error")
        return page(400)
    upload = request.files.get("notebook")
    if upload is None or not upload.filename:
        flash(_("Choose the notebook file to upload."), "error")
        return page(400)
    filename = Path(upload.filename.replace("\\", "/")).name[:200]
    if not filename.lower().endswith(".ipynb"):
        flash(_("Upload the notebook itself: a file ending in .ipynb."), "error")
        return page(400)
    data = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        flash(
            _(
                "The notebook is larger than %(mb)d MB. Clear its outputs and try again.",
                mb=MAX_UPLOAD_BYTES >> 20,
            ),
            "error",
        )
        return page(413)
    problem = _notebook_problem(data)
    if problem:
        flash(problem, "error")
        return page(400)
    if state.store.add_upload(trainee.user_id, exercise.key, filename, data, state.clock()):
        flash(_("Received %(file)s for %(exercise)s.", file=filename, exercise=exercise.key), "success")
    else:
        flash(_("This exact notebook was received before; nothing changed."), "success")
    return redirect(url_for("kit.upload_notebook"))


# --- the trainer ----------------------------------------------------------------------------------------


def _trainer_required() -> Any:
    if not session.get("trainer"):
        return redirect(url_for("kit.trainer_login"))
    return None


@bp.route("/trainer/login", methods=["GET", "POST"])
def trainer_login():
    state = _state()
    if request.method == "GET":
        return _page("labs/kit/trainer_login.html")
    now, address = state.clock(), request.remote_addr or "?"
    if state.store.failures("pin", address, now) >= PIN_FAILURES_PER_ADDRESS:
        flash(_("Too many wrong PINs from this computer. Wait a few minutes."), "error")
        return _page("labs/kit/trainer_login.html", 429)
    pin = request.form.get("pin", "").strip()
    if not secrets.compare_digest(pin.encode(), state.store.trainer_pin.encode()):
        state.store.add_failure("pin", address, now)
        flash(_("That is not the PIN printed by `lms labs kit serve`."), "error")
        return _page("labs/kit/trainer_login.html", 403)
    session["trainer"] = True
    return redirect(url_for("kit.show_code"))


@bp.post("/trainer/logout")
def trainer_logout():
    session.pop("trainer", None)
    return redirect(url_for("kit.show_checkin"))


@bp.get("/trainer")
def show_code():
    if (refused := _trainer_required()) is not None:
        return refused
    state = _state()
    now = state.clock()
    shown = current_code(state.kit.checkin_secret, now)
    refresh_in = max(1, int((shown.refresh_at - now).total_seconds() + 0.999))
    checked_in = sum(1 for entry in state.store.summary().values() if "checked_in_at" in entry)
    return _page(
        "labs/kit/code.html",
        code=f"{shown.code[:3]} {shown.code[3:]}",
        refresh_in=refresh_in,
        step_seconds=STEP_SECONDS,
        checked_in=checked_in,
        seated=sum(1 for t in state.kit.roster if t.has_seat),
        address=request.host_url,
    )


@bp.get("/trainer/roster")
def show_roster():
    if (refused := _trainer_required()) is not None:
        return refused
    state = _state()
    return _page(
        "labs/kit/roster.html",
        summary=state.store.summary(),
        marks=MARK_LABELS,
        results_name=state.results_path.name,
    )


@bp.post("/trainer/mark")
def mark_trainee():
    if (refused := _trainer_required()) is not None:
        return refused
    state = _state()
    try:
        user_id = int(request.form.get("user_id", ""))
        mark = Attendance(request.form.get("attendance", ""))
    except ValueError:
        flash(_("Choose a trainee and a mark."), "error")
        return redirect(url_for("kit.show_roster"))
    trainee = state.kit.trainee_by_id(user_id)
    if trainee is None:
        abort(404)
    state.store.set_mark(user_id, mark, state.clock())
    flash(_("%(name)s: %(mark)s.", name=trainee.real_name, mark=MARK_LABELS[mark]), "success")
    return redirect(url_for("kit.show_roster"))


@bp.post("/trainer/results")
def export_results():
    if (refused := _trainer_required()) is not None:
        return refused
    state = _state()
    data = build_results(
        state.kit,
        state.store.checkin_records(),
        state.store.mark_records(),
        state.store.upload_records(),
        state.clock(),
    )
    write_private(state.results_path, data)
    return send_file(
        io.BytesIO(data),
        mimetype="application/zip",
        as_attachment=True,
        download_name=state.results_path.name,
    )


# --- the app --------------------------------------------------------------------------------------------


def _error(exc: HTTPException):
    if isinstance(exc, RequestEntityTooLarge):
        message = _(
            "The notebook is larger than %(mb)d MB. Clear its outputs and try again.",
            mb=MAX_UPLOAD_BYTES >> 20,
        )
    elif isinstance(exc, CSRFError):
        message = _("The form had expired. Go back, reload the page and try again.")
    elif exc.code == 404:
        message = _("There is no such page on this lab's server.")
    else:
        message = exc.description or exc.name
    return _page("labs/kit/error.html", exc.code or 500, message=message, code=exc.code)


def lan_address() -> str | None:
    """This laptop's address on the lab network, to print for trainees (no packet is sent)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def create_kit_app(
    kit_path: Path,
    data_path: Path | None = None,
    *,
    results_path: Path | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Flask:
    """The kit server for ``kit_path``; raises KitRefused for a damaged, edited or foreign kit."""
    try:
        data = kit_path.read_bytes()
    except OSError as exc:
        raise KitRefused(_("Cannot read %(path)s: %(error)s", path=kit_path, error=exc.strerror)) from None
    kit = load_kit(data)
    store = KitStore(data_path or default_data_path(kit_path), kit)
    app = Flask(
        __name__,
        root_path=str(Path(__file__).parent),
        template_folder="templates",
        static_folder=str(Path(lms.__file__).parent / "static"),
    )
    app.config.update(
        SECRET_KEY=store.session_secret,
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES + 256 * 1024,
        LANGUAGES=("zh_CN", "en"),
        BABEL_DEFAULT_LOCALE="zh_CN",
        BABEL_DEFAULT_TIMEZONE=kit.site_timezone,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(lms.__file__).parent / "translations"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
    )
    Babel(app, locale_selector=_select_locale)
    CSRFProtect(app)
    app.extensions["lab_kit"] = KitState(kit, store, results_path or default_results_path(kit_path), clock)
    app.add_template_filter(_local, "local")
    app.add_template_global(lambda: normalise_locale(str(_select_locale())) or "zh_CN", "current_locale")
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _error)
    return app
