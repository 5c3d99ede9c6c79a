"""The one place that imports nbgrader. It runs in grading workers and CLI commands, never in a web
request: nbgrader's converters change the process's working directory and its kernels run trainee code.

Everything here works on an nbgrader *course directory* (``source/``, ``submitted/``, ``autograded/``,
``gradebook.db``): a throwaway one that the worker builds per job, or a real one given to
``lms grade autograde``. Configuration is built in code (never read from stray ``nbgrader_config.py``
files), with fresh nbgrader objects per call, and every run checks for failure instead of trusting it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from traitlets.config import Config

from graders.sandbox import BUBBLEWRAP, Limits, SandboxedKernelManager

# nbgrader is imported inside the functions below: importing it pulls in jupyter_server (slow, heavy).

log = logging.getLogger(__name__)

KERNEL_STOPPED = "KernelStopped"
TAMPERED = "TestsTampered"
TIME_LIMIT = "TimeLimitExceeded"
NOT_RUN = "NotRun"
OUTPUT_LIMIT_NOTE = "\n[output truncated: this cell printed more than the limit]\n"


class GradingFailed(RuntimeError):
    """nbgrader could not process the course directory (a problem of the assignment, not the trainee)."""


@dataclass(frozen=True)
class CellResult:
    """One graded cell of one submission as nbgrader's gradebook holds it after autograding."""

    grade_id: str
    kind: str  # "tests" | "manual" | "auto"
    max_points: float
    auto_points: float | None
    manual_points: float | None
    extra_credit: float
    needs_manual: bool
    auto_comment: str


WARM = "warm"
KERNEL = "kernel"
ENGINES = (WARM, KERNEL)


def course_config(
    root: Path,
    course_id: str,
    *,
    limits: Limits | None = None,
    sandbox_mode: str = BUBBLEWRAP,
    base: Config | None = None,
    engine: str = WARM,
    preload: tuple[str, ...] = (),
) -> Config:
    """nbgrader configuration for a course directory, built in code, executing in the sandbox.

    ``engine`` "warm" runs each submission as a fresh run forked in a warm sandbox that has imported
    ``preload`` (graders.warm); "kernel" starts a Jupyter kernel in a new sandbox per submission.
    """
    limits = limits or Limits()
    cfg = Config(base) if base is not None else Config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.course_id = course_id
    cfg.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    cfg.Execute.timeout = limits.cell_timeout
    cfg.Execute.startup_timeout = 120  # a loaded machine may need a while to start a kernel
    cfg.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
    cfg.Autograde.create_student = True
    cfg.Autograde.autograde_preprocessors = [
        "graders.nbgrader_backend.WarmExecute"
        if engine == WARM
        else "graders.nbgrader_backend.SandboxedExecute",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    cfg.SandboxedKernelManager.sandbox_mode = sandbox_mode
    cfg.SandboxedKernelManager.sandbox_limits = limits.as_dict()
    cfg.SandboxedExecute.output_bytes = limits.output_bytes
    cfg.WarmExecute.limits = limits.as_dict()
    cfg.WarmExecute.sandbox_mode = sandbox_mode
    cfg.WarmExecute.preload = list(preload)
    return cfg


def read_course_config(course_dir: Path) -> Config:
    """The ``nbgrader_config.py`` of a course directory (only that file), or an empty Config."""
    from traitlets.config.loader import PyFileConfigLoader

    path = course_dir / "nbgrader_config.py"
    if not path.is_file():
        return Config()
    return PyFileConfigLoader(path.name, path=str(course_dir)).load_config()


def _execute_class() -> type:
    from nbgrader.preprocessors import Execute
    from traitlets import Integer

    class _SandboxedExecute(Execute):
        """nbgrader's Execute with the kernel in the sandbox, capped outputs, and a kernel that stops
        (exits, is killed, runs out of time) costing only the cells from there on."""

        output_bytes = Integer(1024**2).tag(config=True)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["kernel_manager_class"] = SandboxedKernelManager
            super().__init__(*args, **kwargs)

        def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> Any:
            self._stopped: str | None = None
            self._output_sizes: dict[int, int] = {}
            self._data_dir = (resources or {}).get("metadata", {}).get("path", "")
            try:
                return super().preprocess(nb, resources, km)
            except DeadKernelError:  # died while starting or shutting down: the cells say what ran
                return nb, resources

        def create_kernel_manager(self) -> Any:
            km = super().create_kernel_manager()
            km.data_dir = self._data_dir
            return km

        def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> Any:
            if cell.cell_type != "code":
                return cell, resources
            if self._stopped is not None:
                cell.outputs = [_error(NOT_RUN, self._stopped)]
                return cell, resources
            try:
                # Test cells run outside the kernel's input history (In, _ih), so that a later trainee
                # cell cannot print hidden tests back out.
                meta = cell.metadata.get("nbgrader", {})
                is_test = bool(meta.get("grade")) and not meta.get("solution")
                self._check_assign_resources(resources)
                if is_test and not self._reset_shell():
                    cell.outputs = [
                        _error(TAMPERED, "the notebook changed how the tests run; this cell earns nothing")
                    ]
                    return cell, resources
                cell = self.execute_cell(cell, index, store_history=not is_test)
                return cell, self.resources
            except DeadKernelError:
                if getattr(self.km, "total_time_exceeded", False):
                    self._stopped = "the notebook ran out of time (total time limit); this cell did not run"
                    cell.outputs.append(
                        _error(TIME_LIMIT, "the total time limit for the notebook was reached")
                    )
                else:
                    self._stopped = "the kernel had stopped before this cell; it did not run"
                    cell.outputs.append(
                        _error(KERNEL_STOPPED, "the kernel stopped (it exited, crashed or hit a limit)")
                    )
                return cell, resources

        def _reset_shell(self) -> bool:
            """Undo what trainee code can do to the shell to fool the tests (AST and input transformers,
            custom exception handlers, event callbacks, patched shell methods) before a test cell runs.

            Trainee code shares the interpreter with the tests, so this raises the bar rather than
            guaranteeing anything; a reset that does not answer with its token counts as tampering.
            """
            token = secrets.token_hex(16)
            code = _SHELL_RESET.replace("TOKEN", token)
            expression = f"__import__('builtins').exec({code!r}, ns := {{}}) or ns.get('ok')"
            try:
                msg_id = self.kc.execute(
                    "", silent=True, store_history=False, user_expressions={"r": expression}
                )
                reply = self.wait_for_reply(msg_id)
            except Exception:  # noqa: BLE001  (a dead or stuck kernel is handled by the cell itself)
                return True
            if reply is None:
                return True
            result = reply.get("content", {}).get("user_expressions", {}).get("r", {})
            text = result.get("data", {}).get("text/plain", "") if result.get("status") == "ok" else ""
            return token in text

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            content = msg.get("content", {})
            is_stream = msg.get("msg_type") == "stream" and isinstance(content.get("text"), str)
            size = len(content["text"]) if is_stream else len(repr(content))
            used = self._output_sizes.get(cell_index, 0)
            self._output_sizes[cell_index] = used + size
            if used > self.output_bytes:
                return None
            if used + size > self.output_bytes:
                if is_stream:  # keep what fits of the text, as the warm sandbox does
                    head = {**content, "text": content["text"][: self.output_bytes - used]}
                    super().output(outs, {**msg, "content": head}, display_id, cell_index)
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=OUTPUT_LIMIT_NOTE))
                return None
            return super().output(outs, msg, display_id, cell_index)

    _SandboxedExecute.__name__ = "SandboxedExecute"
    _SandboxedExecute.__qualname__ = "SandboxedExecute"
    return _SandboxedExecute


# Runs inside the kernel before each test cell (see SandboxedExecute._reset_shell).
_SHELL_RESET = """
import IPython.core.interactiveshell as _ishell
from IPython.core.inputtransformer2 import TransformerManager
ip = _ishell.InteractiveShell.instance()
ip.ast_transformers[:] = []
ip.input_transformers_post[:] = []
ip.input_transformer_manager = TransformerManager()
ip.custom_exceptions = ()
for name in ("showtraceback", "_showtraceback", "run_cell", "run_ast_nodes", "transform_cell", "CustomTB",
             "run_code"):
    ip.__dict__.pop(name, None)
ours = ("IPython", "ipykernel", "matplotlib")
for event, callbacks in ip.events.callbacks.items():
    callbacks[:] = [c for c in callbacks if (getattr(c, "__module__", "") or "").split(".")[0] in ours]
ok = "TOKEN"
"""


def _warm_execute_class() -> type:
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Dict, List, Unicode

    from graders import runs, warm

    class _WarmExecute(NbGraderPreprocessor):
        """Executes the notebook as a fresh run in this process's warm sandbox (graders.warm), recording
        outputs, timeouts and a stopped run exactly as SandboxedExecute does with a kernel; takes the
        outcomes of a run ahead (graders.runs) when it ran exactly these cells."""

        limits = Dict().tag(config=True)
        sandbox_mode = Unicode(BUBBLEWRAP).tag(config=True)
        preload = List(Unicode()).tag(config=True)

        def preprocess(self, nb: NotebookNode, resources: Any) -> Any:
            limits = Limits.from_dict(self.limits)
            key = warm.WarmKey(limits=limits, preload=tuple(self.preload), mode=self.sandbox_mode)
            data_dir = (resources or {}).get("metadata", {}).get("path", "")
            files = _data_files(Path(data_dir), limits.disk_bytes) if data_dir else {}
            code_cells = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
            requests = cell_requests(code_cells)
            outcomes: list[runs.CellOutcome] | None = None
            for attempt in (1, 2):  # a broken warm sandbox (not the trainee's doing) is replaced once
                sandbox = warm.sandbox_for(key)
                outcomes = runs.take(sandbox, requests, files, limits)
                if outcomes is not None:
                    break
                try:
                    outcomes = runs.run_cells(sandbox, requests, files, limits, _SHELL_RESET)
                    break
                except warm.SandboxBroken:
                    log.warning("the warm sandbox broke; %s", "retrying" if attempt == 1 else "giving up")
                    warm.discard(sandbox)
                    if attempt == 2:
                        raise
            assert outcomes is not None
            for cell, outcome in zip(code_cells, outcomes, strict=True):
                _apply_outcome(cell, outcome)
            about = (resources or {}).get("nbgrader", {})
            if sandbox.alive and "student" in about and "notebook" in about:
                runs.start_after(about["student"], about["notebook"], sandbox, limits, _SHELL_RESET)
            return nb, resources

    _WarmExecute.__name__ = "WarmExecute"
    _WarmExecute.__qualname__ = "WarmExecute"
    return _WarmExecute


def cell_requests(code_cells: list[Any], locked: dict[str, str] | None = None) -> list[Any]:
    """What the warm engine sends for these non-empty code cells: each source (a locked cell's from
    ``locked`` by grade id, as nbgrader's OverwriteCells restores it) and whether it is a test cell."""
    from graders.runs import CellRequest

    requests = []
    for cell in code_cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        meta = meta if isinstance(meta, dict) else {}
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if locked and meta.get("grade_id") in locked:
            source = locked[meta["grade_id"]]
        requests.append(CellRequest(source, bool(meta.get("grade")) and not meta.get("solution")))
    return requests


def plan_runs_ahead(cfg: Config, assignment: str, students: list[str], files_limit: int) -> None:
    """Tell the warm engine which notebooks this process grades next, in order, so that each one's cells
    run while nbgrader records the one before (graders.runs). The cells are predicted as nbgrader will
    prepare them: the submitted code cells with the locked ones restored from the gradebook."""
    from functools import partial

    from nbgrader.api import Gradebook

    from graders import runs

    with (
        _nbgrader_warnings_silenced(),
        Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb,
    ):
        locked = {
            notebook.name: {cell.name: cell.source for cell in notebook.source_cells if cell.locked}
            for notebook in gb.find_assignment(assignment).notebooks
        }
    root = Path(cfg.CourseDirectory.root)
    planned = []
    for student in students:
        folder = root / "submitted" / student / assignment
        for path in sorted(folder.glob("*.ipynb")):
            if path.stem in locked:
                predict = partial(
                    _predicted_run, path, root / "source" / assignment, locked[path.stem], files_limit
                )
                planned.append(runs.Planned(student, path.stem, predict))
    runs.plan(planned)


def _predicted_run(
    path: Path, source_folder: Path, locked: dict[str, str], files_limit: int
) -> tuple[list[Any], dict[str, bytes]] | None:
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cells = [cell for cell in notebook["cells"] if cell.get("cell_type") == "code"]
        requests = [request for request in cell_requests(cells, locked) if request.source.strip()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # nbgrader reports what is wrong with it
    # nbgrader puts the submitted files beside the notebook, then the source's over them
    files = _data_files(path.parent, files_limit)
    files.update(_data_files(source_folder, files_limit))
    return requests, files


def _apply_outcome(cell: NotebookNode, outcome: Any) -> None:
    from graders import runs

    if outcome.kind == runs.NOT_RUN:
        cell.outputs = [_error(NOT_RUN, outcome.message)]
    elif outcome.kind == runs.TAMPERED:
        cell.outputs = [_error(TAMPERED, "the notebook changed how the tests run; this cell earns nothing")]
    elif outcome.kind == runs.RAN:
        cell.outputs = _checked_outputs(outcome.reply.get("outputs"))
        _record_failure(cell, outcome.reply)
        count = outcome.reply.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
    elif outcome.kind == runs.TIMED_OUT:
        # as nbgrader's Execute: the kernel's interruption, then the timeout error
        cell.outputs = _checked_outputs(outcome.reply.get("outputs"))
        cell.outputs.append(_CELL_TIMEOUT())
    elif outcome.kind == runs.OUT_OF_TIME:
        cell.outputs.append(_error(TIME_LIMIT, "the total time limit for the notebook was reached"))
    else:
        cell.outputs.append(_error(KERNEL_STOPPED, "the kernel stopped (it exited, crashed or hit a limit)"))


def _CELL_TIMEOUT() -> NotebookNode:  # noqa: N802  (nbgrader's Execute.error_on_timeout)
    return nbformat.v4.new_output(
        "error",
        ename="CellTimeoutError",
        evalue="",
        traceback=["\x1b[0;31mCellTimeoutError\x1b[0m: No reply from kernel before timeout"],
    )


def _data_files(folder: Path, limit: int) -> dict[str, bytes]:
    """The non-notebook files beside a notebook (what a run gets in its working directory), up to ``limit``
    bytes in all."""
    files: dict[str, bytes] = {}
    total = 0
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            any(part.startswith(".") for part in relative.parts)
            or path.suffix == ".ipynb"
            or not path.is_file()
        ):
            continue
        total += path.stat().st_size
        if total > limit:
            log.warning("data files beside %s exceed %d bytes; the rest are left out", folder, limit)
            break
        files[str(relative)] = path.read_bytes()
    return files


_STREAM_NAMES = ("stdout", "stderr")


def _record_failure(cell: NotebookNode, reply: dict[str, Any]) -> None:
    # As nbgrader's Execute.on_cell_executed: a failed cell whose error is not among its outputs (the
    # shell's traceback display was silenced) still gets one, so it cannot pass unseen.
    if reply.get("status") != "error":
        return
    ename = str(reply.get("ename", "Error"))
    if not any(output.output_type == "error" and output.ename == ename for output in cell.outputs):
        cell.outputs.append(_error(ename, "the cell raised an error"))


def _checked_outputs(outputs: Any) -> list[NotebookNode]:
    """Outputs sent by a run (untrusted) as valid nbformat outputs; anything malformed is dropped."""
    checked: list[NotebookNode] = []
    if not isinstance(outputs, list):
        return checked
    for output in outputs:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") in _STREAM_NAMES and isinstance(output.get("text"), str):
            checked.append(nbformat.v4.new_output("stream", name=output["name"], text=output["text"]))
        elif kind == "error":
            traceback = output.get("traceback")
            if not (isinstance(traceback, list) and all(isinstance(line, str) for line in traceback)):
                traceback = []
            checked.append(
                nbformat.v4.new_output(
                    "error",
                    ename=str(output.get("ename", "")),
                    evalue=str(output.get("evalue", "")),
                    traceback=traceback,
                )
            )
        elif kind in ("execute_result", "display_data"):
            data = output.get("data")
            metadata = output.get("metadata")
            if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
                continue
            fields: dict[str, Any] = {
                "data": data,
                "metadata": metadata if isinstance(metadata, dict) else {},
            }
            if kind == "execute_result":
                count = output.get("execution_count")
                fields["execution_count"] = count if isinstance(count, int) else None
            checked.append(nbformat.v4.new_output(kind, **fields))
    return checked


def _error(name: str, message: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


def __getattr__(name: str) -> Any:
    # nbgrader resolves preprocessors by import string; build the class on first use so that importing
    # this module does not import nbgrader.
    if name in ("SandboxedExecute", "WarmExecute"):
        cls = _execute_class() if name == "SandboxedExecute" else _warm_execute_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


class _LogCollector(logging.Handler):
    """Keeps nbgrader's log lines of one run (bounded) for the job's log and for error messages."""

    def __init__(self, limit: int = 400) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.limit = limit

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < self.limit:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            self.lines.append(f"{record.levelname}: {text}"[:2000])


@contextmanager
def _nbgrader_warnings_silenced() -> Iterator[None]:
    # nbgrader 0.9 trips SQLAlchemy 2 and traitlets deprecation warnings; they are its own, not ours.
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        yield


def _put_alembic_on_path() -> None:
    # nbgrader's gradebook runs the ``alembic`` command; it lives beside this interpreter.
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, path]) if path else bindir


KEPT_ENGINES = 8


def _spare_repeated_work() -> None:
    """Make nbgrader skip work it repeats for every notebook, without changing what it computes.

    Per notebook nbgrader opens its gradebook about nine times, and each open builds a new engine and
    checks every table's existence; and it validates each cell's metadata with ``jsonschema.validate``,
    which checks nbgrader's own (constant) schema again every time. Here an engine is made once per
    database per process and the tables are checked once; a schema is checked once and its validator
    reused. Idempotent; runs in grading processes only.
    """
    import jsonschema
    from nbgrader import api
    from nbgrader.nbgraderformat import common

    if getattr(api.Gradebook, "_lms_spared", False):
        return
    # the web worker grades each job in a new temporary course directory: keep a few engines, not all
    engines: OrderedDict[str, Any] = OrderedDict()
    original_init = api.Gradebook.__init__

    def init(self: Any, db_url: str, course_id: str = "default_course", authenticator: Any = None) -> None:
        if db_url not in engines:  # first open: nbgrader's own checks (tables, alembic version)
            original_init(self, db_url, course_id, authenticator)
            engines[db_url] = self.engine
            while len(engines) > KEPT_ENGINES:
                engines.popitem(last=False)[1].dispose()
            return
        engines.move_to_end(db_url)
        self.engine = engines[db_url]
        self.db = api.scoped_session(api.sessionmaker(autoflush=True, bind=self.engine, future=True))
        self.check_course(course_id=course_id)
        self.course_id = course_id
        self.authenticator = authenticator

    api.Gradebook.__init__ = init
    api.Gradebook._lms_spared = True

    validators: dict[str, Any] = {}

    class _CachedValidation:
        """Stands in for the ``jsonschema`` module inside nbgrader's metadata format checks."""

        def __getattr__(self, name: str) -> Any:
            return getattr(jsonschema, name)

        @staticmethod
        def validate(instance: Any, schema: dict[str, Any]) -> None:
            key = json.dumps(schema, sort_keys=True)
            validator = validators.get(key)
            if validator is None:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                validator = validators[key] = cls(schema)
            error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
            if error is not None:
                raise error

    common.jsonschema = _CachedValidation()


def _run(converter_class: Any, cfg: Config) -> list[str]:
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    _put_alembic_on_path()
    _spare_repeated_work()
    collector = _LogCollector()
    logger = logging.Logger(f"lms.grading.{converter_class.__name__}")
    logger.addHandler(collector)
    cwd = os.getcwd()
    try:
        with _nbgrader_warnings_silenced():
            coursedir = CourseDirectory(config=cfg)
            converter = converter_class(coursedir=coursedir, config=cfg, log=logger)
            converter.start()
    except NbGraderException as error:
        problems = [line for line in collector.lines if line.startswith(("ERROR", "CRITICAL"))]
        raise GradingFailed("\n".join(problems[-10:]) or str(error)) from error
    finally:
        os.chdir(cwd)  # nbgrader changes the working directory of the whole process
    return collector.lines


def ensure_gradebook(db_file: Path) -> None:
    """Create an empty nbgrader gradebook at ``db_file`` if there is none.

    nbgrader creates one itself, but finds its schema version by running the ``alembic`` command in a
    subprocess, which costs seconds per new gradebook; here the head revision is read in-process, once.
    """
    if db_file.exists():
        return
    import sqlite3

    sqlite3.connect(db_file).close()
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db_file}")
    try:
        with _nbgrader_warnings_silenced(), engine.begin() as connection:
            Base.metadata.create_all(bind=connection)
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": _schema_head()}
            )
    finally:
        engine.dispose()


_HEAD: list[str] = []


def _schema_head() -> str:
    if not _HEAD:
        import nbgrader
        from alembic.script import ScriptDirectory

        directory = ScriptDirectory(str(Path(nbgrader.__file__).parent / "alembic"))
        _HEAD.append(str(directory.get_current_head()))
    return _HEAD[0]


def generate_assignment(cfg: Config, assignment: str) -> list[str]:
    """nbgrader generate_assignment: ``source/<assignment>`` → ``release/<assignment>`` and the gradebook."""
    from nbgrader.converters import GenerateAssignment

    ensure_gradebook(Path(cfg.CourseDirectory.root) / "gradebook.db")

    cfg = Config(cfg)
    cfg.CourseDirectory.assignment_id = assignment
    cfg.GenerateAssignment.force = True
    cfg.GenerateAssignment.create_assignment = True
    return _run(GenerateAssignment, cfg)


def autograde(cfg: Config, assignment: str, student: str = "*") -> list[str]:
    """nbgrader autograde of ``submitted/<student>/<assignment>`` (every student for ``"*"``)."""
    from nbgrader.converters import Autograde

    cfg = Config(cfg)
    cfg.CourseDirectory.assignment_id = assignment
    cfg.CourseDirectory.student_id = student
    cfg.Autograde.force = True
    return _run(Autograde, cfg)


def set_submission_time(root: Path, student: str, assignment: str, submitted_at: datetime) -> None:
    """Write nbgrader's ``timestamp.txt`` so the gradebook records when the trainee handed in."""
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    stamp = submitted_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    (folder / "timestamp.txt").write_text(stamp)


def read_results(root: Path, cfg: Config, assignment: str, notebook: str, student: str) -> list[CellResult]:
    """Per graded cell of the student's autograded notebook, what the gradebook holds."""
    from nbgrader.api import Gradebook

    with (
        _nbgrader_warnings_silenced(),
        Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb,
    ):
        submission = gb.find_submission_notebook(notebook, assignment, student)
        comments = {comment.name: comment.auto_comment or "" for comment in submission.comments}
        results = []
        for grade in submission.grades:
            cell = grade.cell
            kind = "manual" if grade.cell_type == "markdown" or _is_solution(cell) else "tests"
            results.append(
                CellResult(
                    grade_id=grade.name,
                    kind=kind,
                    max_points=float(grade.max_score),
                    auto_points=None if grade.auto_score is None else float(grade.auto_score),
                    manual_points=None if grade.manual_score is None else float(grade.manual_score),
                    extra_credit=float(grade.extra_credit or 0.0),
                    needs_manual=bool(grade.needs_manual_grade),
                    auto_comment=comments.get(grade.name, ""),
                )
            )
        return results


def _is_solution(grade_cell: Any) -> bool:
    # A graded cell that is also a solution cell is a manually graded answer.
    notebook = grade_cell.notebook
    return any(cell.name == grade_cell.name for cell in notebook.solution_cells)


# --- reading and writing a course directory's gradebook (the ``lms grade`` commands) -------------------


class NotInGradebook(LookupError):
    """The gradebook has no such assignment or submission (or there is no gradebook at all)."""


@dataclass(frozen=True)
class NotebookGrades:
    """One notebook of a student's submission as the gradebook holds it."""

    notebook: str
    cells: list[CellResult]
    comments: dict[str, str]  # cell name → the grader's comment, else the autograder's
    late_penalty: float


@dataclass(frozen=True)
class SubmissionGrades:
    """A student's submitted assignment: when it was handed in and each notebook's grades."""

    assignment: str
    student: str
    submitted_at: datetime | None
    notebooks: list[NotebookGrades]


@dataclass(frozen=True)
class GradebookAssignment:
    """An assignment to record in a gradebook (its notebooks and cells come from generate_assignment)."""

    name: str
    due_at: datetime | None


@dataclass(frozen=True)
class GradebookStudent:
    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""


@dataclass(frozen=True)
class GradebookCell:
    """The points of one grade cell of a submission; a cell with neither points waits for a grader."""

    grade_id: str
    auto_points: float | None
    manual_points: float | None
    extra_credit: float = 0.0
    comment: str = ""


@dataclass(frozen=True)
class GradebookSubmission:
    """A student's submission of a one-notebook assignment with its grades and late penalty."""

    assignment: str
    notebook: str
    student: str
    submitted_at: datetime | None
    late_penalty: float
    cells: list[GradebookCell]


def _check_gradebook_exists(cfg: Config) -> None:
    # Opening a Gradebook creates the database: look before touching a course that has none.
    from sqlalchemy.engine import make_url

    url = make_url(cfg.CourseDirectory.db_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise NotInGradebook(f"there is no gradebook at {url.database}")


def assignment_notebooks(cfg: Config, assignment: str) -> list[str]:
    """Names of the assignment's notebooks in the course's gradebook; NotInGradebook when it has none."""
    from nbgrader.api import Gradebook, MissingEntry

    _check_gradebook_exists(cfg)
    with (
        _nbgrader_warnings_silenced(),
        Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb,
    ):
        try:
            return sorted(notebook.name for notebook in gb.find_assignment(assignment).notebooks)
        except MissingEntry:
            raise NotInGradebook(f"the gradebook has no assignment {assignment!r}") from None


def read_submission_grades(cfg: Config, assignment: str, student: str) -> SubmissionGrades:
    """Everything the gradebook holds about a student's submission: timestamp, per-cell points, maximum
    points, comments and late penalty of each notebook."""
    from nbgrader.api import Gradebook, MissingEntry

    _check_gradebook_exists(cfg)
    with (
        _nbgrader_warnings_silenced(),
        Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb,
    ):
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            raise NotInGradebook(
                f"the gradebook has no submission of {assignment!r} by {student!r}"
            ) from None
        notebooks = []
        for notebook in sorted(submission.notebooks, key=lambda nb: nb.name):
            comments = {
                comment.name: comment.manual_comment or comment.auto_comment or ""
                for comment in notebook.comments
            }
            cells = [
                CellResult(
                    grade_id=grade.name,
                    kind="manual" if grade.cell_type == "markdown" or _is_solution(grade.cell) else "tests",
                    max_points=float(grade.max_score),
                    auto_points=None if grade.auto_score is None else float(grade.auto_score),
                    manual_points=None if grade.manual_score is None else float(grade.manual_score),
                    extra_credit=float(grade.extra_credit or 0.0),
                    needs_manual=bool(grade.needs_manual_grade),
                    auto_comment=comments.get(grade.name, ""),
                )
                for grade in notebook.grades
            ]
            notebooks.append(
                NotebookGrades(
                    notebook=notebook.name,
                    cells=cells,
                    comments=comments,
                    late_penalty=float(notebook.late_submission_penalty or 0.0),
                )
            )
        stamp = submission.timestamp
        return SubmissionGrades(
            assignment=assignment,
            student=student,
            submitted_at=None if stamp is None else stamp.replace(tzinfo=UTC),  # nbgrader keeps naive UTC
            notebooks=notebooks,
        )


def write_grades(
    cfg: Config,
    assignments: list[GradebookAssignment],
    students: list[GradebookStudent],
    submissions: list[GradebookSubmission],
) -> None:
    """Record due dates, students, submissions and their grades in the course's gradebook.

    The assignments must already be in it (``generate_assignment`` puts their notebooks and cells there).
    nbgrader takes the late penalty off *after* extra credit and the LMS before it, so the penalty written
    is capped at the points earned: ``nbgrader export`` then shows the LMS's score.
    """
    from nbgrader.api import Gradebook, MissingEntry

    with (
        _nbgrader_warnings_silenced(),
        Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb,
    ):
        for assignment in assignments:
            gb.update_or_create_assignment(assignment.name, duedate=_naive_utc(assignment.due_at))
        for student in students:
            gb.update_or_create_student(
                student.id,
                first_name=student.first_name or None,
                last_name=student.last_name or None,
                email=student.email or None,
            )
        for record in submissions:
            gb.update_or_create_submission(
                record.assignment, record.student, timestamp=_naive_utc(record.submitted_at)
            )
            notebook = gb.find_submission_notebook(record.notebook, record.assignment, record.student)
            by_id = {cell.grade_id: cell for cell in record.cells}
            earned = 0.0
            for grade in notebook.grades:
                cell = by_id.get(grade.name)
                if cell is None:  # not graded yet (queued, or grading failed)
                    grade.auto_score = grade.manual_score = None
                    grade.extra_credit = None
                    grade.needs_manual_grade = True
                    continue
                grade.auto_score = cell.auto_points
                grade.manual_score = cell.manual_points
                grade.extra_credit = cell.extra_credit or None
                grade.needs_manual_grade = cell.auto_points is None and cell.manual_points is None
                points = cell.manual_points if cell.manual_points is not None else cell.auto_points
                earned += points or 0.0
                if cell.comment:
                    try:
                        comment = gb.find_comment(
                            cell.grade_id, record.notebook, record.assignment, record.student
                        )
                    except MissingEntry:  # nbgrader keeps comments on answer cells only
                        continue
                    comment.manual_comment = cell.comment
            notebook.late_submission_penalty = min(record.late_penalty, earned)
        gb.db.commit()


def _naive_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)
