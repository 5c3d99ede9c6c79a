"""Lab kits for sites without a reliable connection: export, verify, import the results.

A *kit* (``kit.zip``) carries what one lab meeting needs on a laptop on the lab network: the roster,
the check-in secret, the exercises' release notebooks and the kit key. The laptop serves it with
``labs/kit_server.py`` and writes *results* (``results.zip``): check-ins, attendance marks and notebook
uploads. ``import_results`` merges them into the bookings: importing twice changes nothing, and a record
that disagrees with one made online is reported, never written over.

Both archives hold ``manifest.json``, their members and ``signature.json``: an HMAC-SHA-256 over every
other member's name and bytes, keyed by the *kit key*. The kit key is derived from this instance's
SECRET_KEY and the kit id, so only this LMS can make it and a results file of another LMS (or one
changed after signing) is refused. The kit carries its key so that the laptop can sign the results:
keep a kit like a password, it also holds the check-in secret and the trainees' real names.

The archive, signature and notebook functions are pure; ``export_kit`` and ``import_results`` are
services (flush, never commit); ``store_uploads`` writes the uploaded notebooks for the graders.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import select

from labs import attendance
from labs.models import Attendance, Booking, BookingState, LabOccurrence, OccurrenceStatus
from lms import signals
from lms.extensions import db
from lms.models import CourseUnit, UnitKind
from lms.services import DomainError, audit
from lms.timeutil import utcnow

FORMAT_VERSION = 1
"""The archive format this LMS writes and reads; a newer one is refused as "too new"."""

KIT_KIND = "lms-lab-kit"
RESULTS_KIND = "lms-lab-kit-results"

MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
ROSTER = "roster.json"
SECRET = "secret.json"
RECORDS = "records.json"

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""The largest notebook a trainee may upload to the kit server."""

MAX_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024
"""Uncompressed size limit of an archive (a lab of 60 trainees uploading several notebooks fits)."""

UPLOADS_FOLDER = "labs-kit-uploads"
"""Under the instance folder: ``<kit id>/<user id>/<exercise>-<sha256>.ipynb`` plus a ``.json`` sidecar."""

_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MEMBER_PATTERN = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


# --- errors ---------------------------------------------------------------------------------------------


class KitRefused(DomainError):
    """A kit or results archive cannot be used; the message says why and what to do."""


class KitCorrupt(KitRefused):
    """Not a readable archive of the expected shape (damaged, truncated, or something else)."""


class KitForeign(KitRefused):
    """Made by another LMS instance, or of the wrong kind (a kit given where results are expected)."""


class KitSignatureInvalid(KitRefused):
    """A member was changed, added or removed after signing, or the signing key is not ours."""


class KitUnknownOccurrence(KitRefused):
    """The lab meeting the archive belongs to does not exist (any more) in this LMS."""


class KitExportRefused(DomainError):
    """A kit cannot be made for this lab meeting."""


# --- keys -----------------------------------------------------------------------------------------------


def instance_id(secret_key: str) -> str:
    """A stable, non-secret name of this LMS instance, derived from its SECRET_KEY."""
    return hmac.new(secret_key.encode(), b"lms-instance-id", hashlib.sha256).hexdigest()[:32]


def kit_key(secret_key: str, kit_id: str) -> bytes:
    """The key that signs one kit and its results; only the instance that made the kit can derive it."""
    return hmac.new(secret_key.encode(), b"lms-lab-kit-key\0" + kit_id.encode(), hashlib.sha256).digest()


# --- archives -------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mac(members: Mapping[str, bytes], key: bytes) -> str:
    mac = hmac.new(key, b"lms-lab-kit-signature-v1\n", hashlib.sha256)
    for name in sorted(members):
        if name == SIGNATURE:
            continue
        data = members[name]
        mac.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + hashlib.sha256(data).digest())
    return mac.hexdigest()


def pack(members: Mapping[str, bytes], key: bytes) -> bytes:
    """A signed zip archive of the members (manifest first, signature last)."""
    if MANIFEST not in members or SIGNATURE in members:
        raise ValueError("an archive needs a manifest and gets its signature here")
    signature = {
        "algorithm": "HMAC-SHA256",
        "members": {name: _sha256(members[name]) for name in sorted(members)},
        "hmac": _mac(members, key),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in [MANIFEST, *sorted(n for n in members if n != MANIFEST)]:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), members[name])
        archive.writestr(zipfile.ZipInfo(SIGNATURE, date_time=(1980, 1, 1, 0, 0, 0)), _json(signature))
    return buffer.getvalue()


def unpack(data: bytes) -> dict[str, bytes]:
    """The members of an archive, read in memory (nothing is extracted to disk)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise KitCorrupt(_("The file is not a zip archive: it is damaged or is something else.")) from None
    members: dict[str, bytes] = {}
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise KitCorrupt(_("The archive has %(n)d members, more than a lab kit ever has.", n=len(infos)))
        if sum(info.file_size for info in infos) > MAX_ARCHIVE_BYTES:
            raise KitCorrupt(_("The archive unpacks to more than %(gb)d GB.", gb=MAX_ARCHIVE_BYTES >> 30))
        for info in infos:
            name = info.filename
            if not _MEMBER_PATTERN.fullmatch(name) or ".." in name.split("/"):
                raise KitCorrupt(_("The archive has an unexpected member %(name)r.", name=name))
            if name in members:
                raise KitCorrupt(_("The archive holds %(name)s twice.", name=name))
            try:
                members[name] = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError):
                raise KitCorrupt(
                    _("Member %(name)s of the archive is damaged (copy the file again).", name=name)
                ) from None
    return members


def verify(members: Mapping[str, bytes], key: bytes) -> None:
    """Refuse unless signature.json is a valid HMAC of exactly these members under ``key``."""
    raw = members.get(SIGNATURE)
    if raw is None:
        raise KitCorrupt(_("The archive has no signature.json: it was not written by the LMS."))
    try:
        signature = json.loads(raw)
        listed = dict(signature["members"])
        claimed = str(signature["hmac"])
    except (ValueError, KeyError, TypeError):
        raise KitCorrupt(_("signature.json is not readable.")) from None
    actual = {name for name in members if name != SIGNATURE}
    missing, added = sorted(set(listed) - actual), sorted(actual - set(listed))
    if missing:
        raise KitCorrupt(_("Member %(name)s is missing from the archive.", name=missing[0]))
    if hmac.compare_digest(_mac(members, key), claimed):
        if added:  # signed, yet not listed: the writer was not the LMS
            raise KitCorrupt(_("Member %(name)s is not listed in signature.json.", name=added[0]))
        return
    if added:
        raise KitSignatureInvalid(_("Member %(name)s was added after the archive was signed.", name=added[0]))
    changed = [name for name in sorted(actual) if listed.get(name) != _sha256(members[name])]
    if changed:
        raise KitSignatureInvalid(
            _("Member %(name)s was changed after the archive was signed.", name=changed[0])
        )
    raise KitSignatureInvalid(
        _(
            "The signature does not match: the archive was signed with another key (another LMS, or a kit "
            "whose key was changed)."
        )
    )


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


def _load_json(members: Mapping[str, bytes], name: str) -> Any:
    raw = members.get(name)
    if raw is None:
        raise KitCorrupt(_("The archive has no %(name)s.", name=name))
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KitCorrupt(_("%(name)s is not valid JSON.", name=name)) from None


def read_manifest(members: Mapping[str, bytes], kind: str) -> dict[str, Any]:
    """The manifest, checked for kind and format version before anything else is trusted."""
    if MANIFEST not in members:
        raise KitCorrupt(_("The archive has no manifest.json: it is not a lab kit or results file."))
    manifest = _load_json(members, MANIFEST)
    if not isinstance(manifest, dict):
        raise KitCorrupt(_("manifest.json is not an object."))
    found = manifest.get("kind")
    if found != kind:
        if found == KIT_KIND:
            raise KitForeign(
                _(
                    "This is a lab kit, not a results file: serve it with `lms labs kit serve`, then export "
                    "the results from the trainer page."
                )
            )
        if found == RESULTS_KIND:
            raise KitForeign(
                _("This is a results file, not a lab kit: import it with `lms labs kit import`.")
            )
        raise KitForeign(_("This archive is not a lab kit or results file of the LMS."))
    version = manifest.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise KitCorrupt(_("manifest.json has no valid format version."))
    if version > FORMAT_VERSION:
        raise KitForeign(
            _(
                "The archive was made by a newer LMS (format %(found)d); this LMS reads format %(ours)d: "
                "update it first.",
                found=version,
                ours=FORMAT_VERSION,
            )
        )
    kit_id = manifest.get("kit_id")
    if not isinstance(kit_id, str) or not _is_uuid(kit_id):
        raise KitCorrupt(_("manifest.json has no valid kit id."))
    if not isinstance(manifest.get("instance_id"), str):
        raise KitCorrupt(_("manifest.json lacks instance_id."))
    if not isinstance(manifest.get("occurrence_id"), int):
        raise KitCorrupt(_("manifest.json lacks occurrence_id."))
    return manifest


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _time(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    raise KitCorrupt(_("%(where)s: %(value)r is not a UTC time.", where=where, value=value))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


# --- release notebooks ----------------------------------------------------------------------------------


def _replace_region(source: str, begin: str, end: str, stub: str | None) -> tuple[str, bool]:
    """Replace each begin…end region (markers included) by ``stub`` at the marker's indentation, or drop
    it when ``stub`` is None. An unterminated region runs to the end of the cell, so nothing leaks."""
    out: list[str] = []
    inside = found = False
    for line in source.split("\n"):
        if not inside and begin in line:
            inside = found = True
            if stub is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + stub_line for stub_line in stub.split("\n"))
            continue
        if inside:
            if end in line:
                inside = False
            continue
        out.append(line)
    return "\n".join(out), found


def release_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """One cell as trainees get it: no solutions, no hidden tests, no outputs."""
    cell = dict(cell)
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    meta = cell.get("metadata", {}).get("nbgrader") or {}
    is_solution = isinstance(meta, dict) and bool(meta.get("solution"))
    code = cell.get("cell_type") == "code"
    source, replaced = _replace_region(source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB if code else TEXT_STUB)
    if is_solution and not replaced:
        source = CODE_STUB if code else TEXT_STUB
    source, _found = _replace_region(source, BEGIN_HIDDEN, END_HIDDEN, None)
    cell["source"] = source
    if code:
        cell["outputs"] = []
        cell["execution_count"] = None
    elif is_solution or replaced:
        cell.pop("attachments", None)
    return cell


def release_notebook(source: str | Mapping[str, Any]) -> dict[str, Any]:
    """The release version of an nbgrader source notebook (JSON text or parsed)."""
    notebook = json.loads(source) if isinstance(source, str) else dict(source)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("not a notebook: no list of cells")
    notebook["cells"] = [release_cell(cell) for cell in notebook["cells"] if isinstance(cell, dict)]
    return notebook


# --- the kit --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterEntry:
    user_id: int
    username: str
    real_name: str
    employer: str
    booking_state: str

    @property
    def has_seat(self) -> bool:
        return self.booking_state == BookingState.BOOKED


@dataclass(frozen=True)
class KitExercise:
    key: str
    title: dict[str, str]
    member: str

    def display_title(self, locale: str) -> str:
        return self.title.get(locale) or self.title.get("zh_CN") or next(iter(self.title.values()), self.key)


@dataclass(frozen=True)
class Kit:
    """A verified kit as the laptop uses it."""

    kit_id: str
    instance_id: str
    occurrence_id: int
    title: str
    cohort: str
    site_name: str
    site_timezone: str
    room: str
    starts_at: datetime
    ends_at: datetime
    exported_at: datetime
    roster: tuple[RosterEntry, ...]
    exercises: tuple[KitExercise, ...]
    notebooks: dict[str, bytes]
    checkin_secret: str
    key: bytes = field(repr=False)

    def trainee(self, username: str) -> RosterEntry | None:
        wanted = username.strip().casefold()
        return next((t for t in self.roster if t.username.casefold() == wanted), None)

    def trainee_by_id(self, user_id: int) -> RosterEntry | None:
        return next((t for t in self.roster if t.user_id == user_id), None)

    def exercise(self, key: str) -> KitExercise | None:
        return next((e for e in self.exercises if e.key == key), None)


def load_kit(data: bytes) -> Kit:
    """Read and verify a kit with the key it carries (catches damage and members edited by hand)."""
    members = unpack(data)
    manifest = read_manifest(members, KIT_KIND)
    secret = _load_json(members, SECRET)
    try:
        key = bytes.fromhex(secret["kit_key"])
        checkin_secret = secret["checkin_secret"]
        assert isinstance(checkin_secret, str) and checkin_secret and len(key) == 32
    except (KeyError, TypeError, ValueError, AssertionError):
        raise KitCorrupt(_("secret.json is not readable.")) from None
    verify(members, key)
    roster_raw = _load_json(members, ROSTER)
    try:
        roster = tuple(
            RosterEntry(
                user_id=int(t["id"]),
                username=str(t["username"]),
                real_name=str(t["real_name"]),
                employer=str(t.get("employer", "")),
                booking_state=str(t["booking_state"]),
            )
            for t in roster_raw["trainees"]
        )
        exercises = tuple(
            KitExercise(key=str(e["key"]), title=dict(e.get("title") or {}), member=str(e["file"]))
            for e in manifest.get("exercises", [])
        )
        site, room = manifest["site"], manifest["room"]
        kit = Kit(
            kit_id=manifest["kit_id"],
            instance_id=manifest["instance_id"],
            occurrence_id=manifest["occurrence_id"],
            title=str(manifest.get("title", "")),
            cohort=str(manifest["cohort"]["code"]),
            site_name=str(site["name"]),
            site_timezone=str(site["timezone"]),
            room=f"{room['code']} {room['name']}".strip(),
            starts_at=_time(manifest["starts_at"], MANIFEST),
            ends_at=_time(manifest["ends_at"], MANIFEST),
            exported_at=_time(manifest["exported_at"], MANIFEST),
            roster=roster,
            exercises=exercises,
            notebooks={e.key: members[e.member] for e in exercises},
            checkin_secret=checkin_secret,
            key=key,
        )
        ZoneInfo(kit.site_timezone)
    except KitRefused:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise KitCorrupt(_("The kit's manifest or roster is incomplete.")) from None
    return kit


# --- results --------------------------------------------------------------------------------------------


def _record_hash(kind: str, record: Mapping[str, Any]) -> str:
    return _sha256(json.dumps({"kind": kind, **record}, sort_keys=True, ensure_ascii=False).encode())


@dataclass(frozen=True)
class CheckinRecord:
    user_id: int
    username: str
    checked_in_at: datetime
    method: str = "code"

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "checked_in_at": _iso(self.checked_in_at),
            "method": self.method,
        }

    @property
    def digest(self) -> str:
        return _record_hash("checkin", self.as_dict())


@dataclass(frozen=True)
class MarkRecord:
    user_id: int
    username: str
    attendance: Attendance
    marked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "attendance": self.attendance.value,
            "marked_at": _iso(self.marked_at),
        }

    @property
    def digest(self) -> str:
        return _record_hash("mark", self.as_dict())


@dataclass(frozen=True)
class UploadRecord:
    user_id: int
    username: str
    exercise: str
    filename: str
    uploaded_at: datetime
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return _sha256(self.data)

    @property
    def member(self) -> str:
        return f"uploads/{self.sha256}.ipynb"

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "exercise": self.exercise,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": len(self.data),
            "uploaded_at": _iso(self.uploaded_at),
            "member": self.member,
        }

    @property
    def digest(self) -> str:
        return _record_hash("upload", self.as_dict())


@dataclass(frozen=True)
class Results:
    kit_id: str
    occurrence_id: int
    exported_at: datetime
    checkins: tuple[CheckinRecord, ...]
    marks: tuple[MarkRecord, ...]
    uploads: tuple[UploadRecord, ...]


def build_results(
    kit: Kit,
    checkins: Iterable[CheckinRecord],
    marks: Iterable[MarkRecord],
    uploads: Iterable[UploadRecord],
    exported_at: datetime,
) -> bytes:
    """The signed results archive the laptop hands back."""
    checkins, marks, uploads = list(checkins), list(marks), list(uploads)
    manifest = {
        "format": FORMAT_VERSION,
        "kind": RESULTS_KIND,
        "kit_id": kit.kit_id,
        "instance_id": kit.instance_id,
        "occurrence_id": kit.occurrence_id,
        "exported_at": _iso(exported_at),
        "exercises": [e.key for e in kit.exercises],
        "counts": {"checkins": len(checkins), "marks": len(marks), "uploads": len(uploads)},
    }
    records = {
        "checkins": [r.as_dict() for r in sorted(checkins, key=lambda r: r.user_id)],
        "marks": [r.as_dict() for r in sorted(marks, key=lambda r: r.user_id)],
        "uploads": [r.as_dict() for r in sorted(uploads, key=lambda r: (r.user_id, r.uploaded_at, r.sha256))],
    }
    members = {MANIFEST: _json(manifest), RECORDS: _json(records)}
    for upload in uploads:
        members[upload.member] = upload.data
    return pack(members, kit.key)


def _parse_records(members: Mapping[str, bytes], manifest: Mapping[str, Any]) -> Results:
    raw = _load_json(members, RECORDS)
    exercises = manifest.get("exercises", [])
    if not isinstance(raw, dict) or not isinstance(exercises, list):
        raise KitCorrupt(_("records.json is not an object."))

    def rows(kind: str) -> list[tuple[str, dict[str, Any]]]:
        items = raw.get(kind, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise KitCorrupt(_("records.json: %(kind)s is not a list of records.", kind=kind))
        return [(f"{RECORDS}: {kind} #{n}", item) for n, item in enumerate(items, start=1)]

    def user(where: str, item: dict[str, Any]) -> tuple[int, str]:
        user_id, username = item.get("user_id"), item.get("username")
        if not isinstance(user_id, int) or isinstance(user_id, bool) or not isinstance(username, str):
            raise KitCorrupt(_("%(where)s: no user id and username.", where=where))
        return user_id, username

    checkins = []
    for where, item in rows("checkins"):
        user_id, username = user(where, item)
        method = item.get("method", "code")
        checkins.append(
            CheckinRecord(user_id, username, _time(item.get("checked_in_at"), where), str(method))
        )
    marks = []
    for where, item in rows("marks"):
        user_id, username = user(where, item)
        try:
            value = Attendance(str(item.get("attendance")))
        except ValueError:
            raise KitCorrupt(
                _(
                    "%(where)s: attendance %(value)r is not one of %(allowed)s.",
                    where=where,
                    value=item.get("attendance"),
                    allowed=", ".join(a.value for a in Attendance),
                )
            ) from None
        marks.append(MarkRecord(user_id, username, value, _time(item.get("marked_at"), where)))
    uploads = []
    for where, item in rows("uploads"):
        user_id, username = user(where, item)
        exercise, member, sha = item.get("exercise"), item.get("member"), item.get("sha256")
        if not isinstance(exercise, str) or not _KEY_PATTERN.fullmatch(exercise) or exercise not in exercises:
            raise KitCorrupt(
                _("%(where)s: exercise %(value)r is not one of the kit's.", where=where, value=exercise)
            )
        if not isinstance(sha, str) or not _SHA256_PATTERN.fullmatch(sha) or member != f"uploads/{sha}.ipynb":
            raise KitCorrupt(_("%(where)s: no valid sha256 and member name.", where=where))
        data = members.get(member)
        if data is None or _sha256(data) != sha:
            raise KitCorrupt(
                _(
                    "%(where)s: the notebook %(member)s is missing or does not match its sha256.",
                    where=where,
                    member=member,
                )
            )
        if len(data) > MAX_UPLOAD_BYTES:
            raise KitCorrupt(
                _("%(where)s: the notebook is larger than %(mb)d MB.", where=where, mb=MAX_UPLOAD_BYTES >> 20)
            )
        filename = item.get("filename")
        uploads.append(
            UploadRecord(
                user_id,
                username,
                exercise,
                str(filename or f"{exercise}.ipynb"),
                _time(item.get("uploaded_at"), where),
                data,
            )
        )
    return Results(
        kit_id=manifest["kit_id"],
        occurrence_id=manifest["occurrence_id"],
        exported_at=_time(manifest.get("exported_at"), MANIFEST),
        checkins=tuple(checkins),
        marks=tuple(marks),
        uploads=tuple(uploads),
    )


def read_results(data: bytes, secret_key: str) -> Results:
    """Unpack and verify a results archive made from one of this instance's kits."""
    members = unpack(data)
    manifest = read_manifest(members, RESULTS_KIND)
    ours = instance_id(secret_key)
    if manifest["instance_id"] != ours:
        raise KitForeign(
            _(
                "These results belong to a kit of another LMS (instance %(theirs)s; this one is %(ours)s): "
                "import them there.",
                theirs=manifest["instance_id"][:12],
                ours=ours[:12],
            )
        )
    verify(members, kit_key(secret_key, manifest["kit_id"]))
    return _parse_records(members, manifest)


# --- services: export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedKit:
    kit_id: str
    data: bytes
    trainees: int
    notebooks: tuple[str, ...]
    warnings: tuple[str, ...]


def _lab_exercises(occurrence: LabOccurrence) -> tuple[list[tuple[str, dict[str, str], bytes]], list[str]]:
    """(key, title, release notebook bytes) of the lab unit's exercises, and warnings."""
    session = occurrence.session
    cohort = session.cohort
    if cohort.course_version_id is None:
        return [], [
            _(
                "Cohort %(cohort)s follows no course version yet: the kit has no notebooks.",
                cohort=cohort.code,
            )
        ]
    lab = db.session.scalar(
        select(CourseUnit).where(
            CourseUnit.version_id == cohort.course_version_id,
            CourseUnit.key == session.unit_key,
            CourseUnit.kind == UnitKind.LAB,
        )
    )
    if lab is None:
        return [], [
            _("The course version has no lab unit %(key)s: the kit has no notebooks.", key=session.unit_key)
        ]
    found = []
    for key in lab.body.get("exercises") or []:
        unit = db.session.scalar(
            select(CourseUnit).where(
                CourseUnit.version_id == cohort.course_version_id,
                CourseUnit.key == key,
                CourseUnit.kind == UnitKind.EXERCISE,
            )
        )
        if unit is None or not unit.body.get("notebook"):
            raise KitExportRefused(
                _(
                    "Lab %(lab)s names exercise %(key)s, which has no notebook in the course version.",
                    lab=session.unit_key,
                    key=key,
                )
            )
        if not _KEY_PATTERN.fullmatch(str(key)):
            raise KitExportRefused(_("Exercise key %(key)r cannot be used as a file name.", key=key))
        try:
            released = release_notebook(unit.body["notebook"])
        except (ValueError, TypeError):
            raise KitExportRefused(
                _("The notebook of exercise %(key)s is not valid JSON.", key=key)
            ) from None
        found.append((str(key), dict(unit.title), _json(released)))
    return found, []


def export_kit(
    occurrence: LabOccurrence, secret_key: str, *, now: datetime | None = None, actor: Any = None
) -> ExportedKit:
    """Pack a kit for one lab meeting (audited; a meeting without a check-in secret gets one)."""
    now = now or utcnow()
    if occurrence.status != OccurrenceStatus.SCHEDULED:
        raise KitExportRefused(_("Lab meeting %(id)d was cancelled.", id=occurrence.id))
    if not occurrence.checkin_secret:
        occurrence.checkin_secret = secrets.token_hex(20)
        db.session.flush()
    exercises, warnings = _lab_exercises(occurrence)
    bookings = db.session.scalars(
        select(Booking).where(Booking.occurrence_id == occurrence.id, Booking.state != BookingState.CANCELLED)
    ).all()
    bookings = sorted(bookings, key=lambda b: (b.state != BookingState.BOOKED, b.user.username))
    kit_id = str(uuid.uuid4())
    key = kit_key(secret_key, kit_id)
    session, room = occurrence.session, occurrence.room
    manifest = {
        "format": FORMAT_VERSION,
        "kind": KIT_KIND,
        "kit_id": kit_id,
        "instance_id": instance_id(secret_key),
        "occurrence_id": occurrence.id,
        "title": session.title or session.unit_key,
        "unit_key": session.unit_key,
        "cohort": {"code": session.cohort.code, "name": session.cohort.name},
        "site": {"code": room.site.code, "name": room.site.name, "timezone": room.site.timezone},
        "room": {"code": room.code, "name": room.name},
        "starts_at": _iso(occurrence.starts_at),
        "ends_at": _iso(occurrence.ends_at),
        "exported_at": _iso(now),
        "exercises": [{"key": k, "title": t, "file": f"notebooks/{k}.ipynb"} for k, t, _d in exercises],
    }
    roster = {
        "trainees": [
            {
                "id": b.user.id,
                "username": b.user.username,
                "real_name": b.user.real_name,
                "employer": b.user.employer,
                "booking_state": b.state.value,
            }
            for b in bookings
        ]
    }
    members = {
        MANIFEST: _json(manifest),
        ROSTER: _json(roster),
        SECRET: _json({"checkin_secret": occurrence.checkin_secret, "kit_key": key.hex()}),
    }
    for k, _title, data in exercises:
        members[f"notebooks/{k}.ipynb"] = data
    audit.record("labs.kit_exported", actor, occurrence, kit_id=kit_id, trainees=len(bookings))
    db.session.flush()
    return ExportedKit(
        kit_id, pack(members, key), len(bookings), tuple(k for k, _t, _d in exercises), tuple(warnings)
    )


# --- services: import -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedUpload:
    """A notebook to keep for the graders: ``path`` is relative to the uploads folder."""

    path: str
    data: bytes
    sidecar: bytes


@dataclass
class ImportReport:
    kit_id: str
    occurrence_id: int
    checkins: int = 0
    marks: int = 0
    uploads: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    files: list[StagedUpload] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.checkins or self.marks or self.uploads)

    def lines(self) -> list[str]:
        lines = [
            _(
                "kit %(kit)s, lab meeting %(occurrence)d: %(checkins)d check-in(s), %(marks)d attendance "
                "mark(s), %(uploads)d notebook(s) merged; %(unchanged)d already imported",
                kit=self.kit_id,
                occurrence=self.occurrence_id,
                checkins=self.checkins,
                marks=self.marks,
                uploads=self.uploads,
                unchanged=self.unchanged,
            )
        ]
        lines += [_("conflict: %(what)s", what=conflict) for conflict in self.conflicts]
        if self.conflicts:
            lines.append(
                _("%(n)d conflict(s) kept the online record; resolve them in the LMS.", n=len(self.conflicts))
            )
        return lines


def _record_attendance(booking: Booking, mark: Attendance, evidence: dict[str, Any]) -> None:
    """Record a mark from the kit and credit its minutes (reckoned as labs.attendance does) through the
    core's signal; the ledger keeps one credit per trainee and meeting, so a repeat changes nothing."""
    booking.attendance = mark
    db.session.flush()
    minutes = attendance.credited_minutes(booking, mark)
    if minutes <= 0:
        return
    occurrence = booking.occurrence
    signals.lab_attendance_recorded.send(
        None,
        user=booking.user,
        cohort=occurrence.session.cohort,
        occurrence_id=occurrence.id,
        minutes=minutes,
        evidence={
            "kind": "lab_attendance",
            "occurrence_id": occurrence.id,
            "session_id": occurrence.session_id,
            "unit_key": occurrence.session.unit_key,
            "starts_at": _iso(occurrence.starts_at),
            "ends_at": _iso(occurrence.ends_at),
            "attendance": mark.value,
            "checked_in_at": _iso(booking.checked_in_at) if booking.checked_in_at else None,
            "booking_id": booking.id,
            **evidence,
        },
    )


class _Merge:
    """Merges one results archive into the bookings of its lab meeting, record by record."""

    def __init__(self, results: Results, occurrence: LabOccurrence, report: ImportReport) -> None:
        self.results = results
        self.occurrence = occurrence
        self.report = report
        self.zone = ZoneInfo(occurrence.room.site.timezone)
        self.bookings = {
            b.user_id: b
            for b in db.session.scalars(
                select(Booking).where(Booking.occurrence_id == occurrence.id).with_for_update(of=Booking)
            )
        }
        self.merged: dict[int, set[str]] = {}

    def local(self, at: datetime) -> str:
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def who(booking: Booking) -> str:
        return f"{booking.user.username} ({booking.user.real_name})"

    def already(self, booking: Booking, digest: str) -> bool:
        done = booking.details.get("kit_imports", {}).get(self.results.kit_id, [])
        return digest in done or digest in self.merged.get(booking.user_id, set())

    def take(self, booking: Booking, digest: str) -> None:
        self.merged.setdefault(booking.user_id, set()).add(digest)

    def conflict(self, message: str) -> None:
        self.report.conflicts.append(message)

    def checkin(self, record: CheckinRecord) -> None:
        booking = self.bookings.get(record.user_id)
        if booking is None:
            self.conflict(
                _(
                    "%(who)s checked in at the lab but has no booking for it online; not merged.",
                    who=record.username,
                )
            )
        elif self.already(booking, record.digest):
            self.report.unchanged += 1
        elif booking.state != BookingState.BOOKED:
            self.conflict(
                _(
                    "%(who)s checked in at the lab, but the booking is %(state)s online; not merged.",
                    who=self.who(booking),
                    state=booking.state.value,
                )
            )
        elif booking.checked_in_at is None:
            booking.checked_in_at = record.checked_in_at
            booking.details = {
                **booking.details,
                "checkin": {"via": "lab-kit", "kit_id": self.results.kit_id},
            }
            self.take(booking, record.digest)
            self.report.checkins += 1
        elif abs((booking.checked_in_at - record.checked_in_at).total_seconds()) < 1:
            self.take(booking, record.digest)
            self.report.unchanged += 1
        else:
            self.conflict(
                _(
                    "%(who)s checked in online at %(online)s, but the kit says %(kit)s; "
                    "kept the online time.",
                    who=self.who(booking),
                    online=self.local(booking.checked_in_at),
                    kit=self.local(record.checked_in_at),
                )
            )

    def mark(self, record: MarkRecord) -> None:
        booking = self.bookings.get(record.user_id)
        if booking is None:
            self.conflict(
                _(
                    "%(who)s is marked %(mark)s at the lab but has no booking for it online; not merged.",
                    who=record.username,
                    mark=record.attendance.value,
                )
            )
        elif self.already(booking, record.digest):
            self.report.unchanged += 1
        elif booking.state != BookingState.BOOKED:
            self.conflict(
                _(
                    "%(who)s is marked %(mark)s at the lab, but the booking is %(state)s online; not merged.",
                    who=self.who(booking),
                    mark=record.attendance.value,
                    state=booking.state.value,
                )
            )
        elif booking.attendance is None:
            evidence = {"via": "lab-kit", "kit_id": self.results.kit_id, "marked_at": _iso(record.marked_at)}
            _record_attendance(booking, record.attendance, evidence)
            self.take(booking, record.digest)
            self.report.marks += 1
        elif booking.attendance == record.attendance:
            self.take(booking, record.digest)
            self.report.unchanged += 1
        else:
            self.conflict(
                _(
                    "%(who)s is marked %(online)s online, but %(kit)s in the kit; kept the online mark.",
                    who=self.who(booking),
                    online=booking.attendance.value,
                    kit=record.attendance.value,
                )
            )

    def upload(self, record: UploadRecord) -> None:
        booking = self.bookings.get(record.user_id)
        if booking is None:
            self.conflict(
                _(
                    "%(who)s uploaded %(file)s at the lab but has no booking for it online; not kept.",
                    who=record.username,
                    file=record.filename,
                )
            )
            return
        sidecar = {
            "kit_id": self.results.kit_id,
            "occurrence_id": self.occurrence.id,
            "user_id": record.user_id,
            "username": booking.user.username,
            "exercise": record.exercise,
            "filename": record.filename,
            "sha256": record.sha256,
            "size": len(record.data),
            "uploaded_at": _iso(record.uploaded_at),
        }
        stem = f"{self.results.kit_id}/{record.user_id}/{record.exercise}-{record.sha256}"
        # Staged even when imported before, so that a file lost on disk is written again.
        self.report.files.append(StagedUpload(f"{stem}.ipynb", record.data, _json(sidecar)))
        if self.already(booking, record.digest):
            self.report.unchanged += 1
        else:
            self.take(booking, record.digest)
            self.report.uploads += 1

    def remember(self) -> None:
        """Keep the digests of the merged records on their bookings."""
        for user_id, digests in self.merged.items():
            booking = self.bookings[user_id]
            imports = dict(booking.details.get("kit_imports", {}))
            imports[self.results.kit_id] = sorted(set(imports.get(self.results.kit_id, [])) | digests)
            booking.details = {**booking.details, "kit_imports": imports}


def import_results(data: bytes, secret_key: str, *, actor: Any = None) -> ImportReport:
    """Merge a results archive into the bookings of its lab meeting.

    Every record is checked against the online one: new facts are written (attendance through the
    hours signal), equal ones are left alone, and disagreeing ones are reported, never written over.
    The digests of merged records are kept in ``Booking.details["kit_imports"][kit_id]`` so that a
    second import of the same file changes nothing. Files to keep are returned in the report, for
    ``store_uploads``; the caller commits once.
    """
    results = read_results(data, secret_key)
    occurrence = db.session.get(LabOccurrence, results.occurrence_id)
    if occurrence is None:
        raise KitUnknownOccurrence(
            _("Lab meeting %(id)d of this kit no longer exists in this LMS.", id=results.occurrence_id)
        )
    report = ImportReport(kit_id=results.kit_id, occurrence_id=occurrence.id)
    merge = _Merge(results, occurrence, report)
    for checkin in results.checkins:
        merge.checkin(checkin)
    db.session.flush()  # check-in times first: the minutes a mark credits depend on them
    for mark in results.marks:
        merge.mark(mark)
    for upload in results.uploads:
        merge.upload(upload)
    merge.remember()
    if report.changed:
        audit.record(
            "labs.kit_imported",
            actor,
            occurrence,
            kit_id=results.kit_id,
            checkins=report.checkins,
            marks=report.marks,
            uploads=report.uploads,
            conflicts=len(report.conflicts),
        )
    db.session.flush()
    return report


def write_private(path: Path, data: bytes) -> None:
    """Write a kit or results file readable by its owner only, atomically (a reader never sees half)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def store_uploads(files: Iterable[StagedUpload], root: Path) -> list[Path]:
    """Write the staged notebooks (and their .json sidecars) under ``root``; files already there with
    the same bytes are left alone. Returns the paths created, for ``discard_uploads`` on a rollback."""
    created: list[Path] = []
    try:
        for staged in files:
            notebook = root / staged.path
            for path, data in ((notebook, staged.data), (notebook.with_suffix(".json"), staged.sidecar)):
                if path.is_file() and path.read_bytes() == data:
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
                temporary.write_bytes(data)
                os.replace(temporary, path)
                created.append(path)
    except OSError:
        discard_uploads(created, root)
        raise
    return created


def discard_uploads(created: Iterable[Path], root: Path) -> None:
    """Remove files ``store_uploads`` created (and the folders they leave empty)."""
    for path in created:
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
