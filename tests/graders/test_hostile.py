"""Hostile trainee code and bad uploads against the real grading path: services.submit, the worker, nbgrader
and the bubblewrap sandbox. Every hostile row ends with the honest score, a message in the cell that says
what happened, grading within its time bound, and nothing left or changed outside the sandbox.

The results go to the JUnit report (``record_result``: score, message, seconds) instead of the terminal;
``pytest --junitxml=...`` collects the table for the issue.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from sqlalchemy import func, select

from graders import services, warm
from graders.models import Assignment, GradingJob, JobKind, Submission, SubmissionStatus
from graders.nbgrader_backend import KERNEL_STOPPED, NOT_RUN, OUTPUT_LIMIT_NOTE, TIME_LIMIT
from graders.repair import UploadRejected
from graders.sandbox import SandboxedKernelManager, python_roots, sandbox_environment
from lms.extensions import db
from lms.models import Role, User
from lms.services import cohorts
from tests.graders.conftest import HIDDEN_SECRET, answer, cell_meta, small_source

CELL_TIMEOUT = 5
TOTAL_TIMEOUT = 60
MEMORY_BYTES = 768 * 1024**2
OUTPUT_BYTES = 256 * 1024
DISK_BYTES = 64 * 1024**2
PROCESSES = 48
# Unique per test session: processes and files a hostile cell leaves behind are found by it, never
# confused with another test's (other suites may run sandboxes on this machine at the same time).
TOKEN = f"hostile{uuid.uuid4().hex[:12]}"
CORRECT_ADD = "def add(a, b):\n    return a + b"
CORRECT_MUL = "def mul(a, b):\n    return a * b"
WRONG_ADD = "def add(a, b):\n    return 0"
PROBE = "# trainee probe"  # first line of the trainee's own cells, to find them in the autograded notebook


@pytest.fixture(autouse=True, params=["warm", "kernel"])
def small_limits(app_config: dict[str, Any], request) -> None:
    """Limits small enough that the bombs hit them in seconds (set before the app is created), with each
    grading engine: the warm sandbox's forked runs and a Jupyter kernel per submission."""
    app_config.update(
        GRADER_MEMORY_BYTES=MEMORY_BYTES,
        GRADER_OUTPUT_BYTES=OUTPUT_BYTES,
        GRADER_DISK_BYTES=DISK_BYTES,
        GRADER_PROCESSES=PROCESSES,
        GRADER_ENGINE=request.param,
    )


@pytest.fixture
def assignment(create_assignment) -> Assignment:
    return create_assignment(cell_timeout=CELL_TIMEOUT, total_timeout=TOTAL_TIMEOUT)


@pytest.fixture
def record_result(request) -> Callable[[str, object], None]:
    """Attach a result (score, message, seconds) to the test's JUnit entry; nothing is printed. The same as
    pytest's record_property, minus its warning about the xunit2 report format (an error under -W error)."""

    def record(name: str, value: object) -> None:
        request.node.user_properties.append((name, value))

    return record


@pytest.fixture
def upload_limits(app) -> dict[str, int]:
    return {
        "max_bytes": int(app.config["GRADER_MAX_UPLOAD_BYTES"]),
        "max_cells": int(app.config["GRADER_MAX_CELLS"]),
    }


# --- building and grading a submission -----------------------------------------------------------------


def notebook_bytes(
    assignment: Assignment,
    sol_add: str,
    *,
    sol_mul: str = CORRECT_MUL,
    after_add: tuple[str, ...] = (),
    at_end: tuple[str, ...] = (),
) -> bytes:
    """The release notebook answered with ``sol_add``/``sol_mul``, the trainee's own code cells ``after_add``
    (between the add answer and its tests) and ``at_end`` (after every test)."""
    notebook = nbformat.reads(answer(assignment, {"sol-add": sol_add, "sol-mul": sol_mul}).decode(), 4)
    position = next(
        index
        for index, cell in enumerate(notebook.cells)
        if cell.metadata["nbgrader"]["grade_id"] == "sol-add"
    )
    own = [new_code_cell(f"{PROBE}\n{source}") for source in after_add]
    notebook.cells[position + 1 : position + 1] = own
    notebook.cells.extend(new_code_cell(f"{PROBE}\n{source}") for source in at_end)
    return nbformat.writes(notebook).encode()


@dataclass
class Graded:
    """A graded submission and what its autograded notebook shows."""

    submission: Submission
    seconds: float
    cells: list[dict[str, Any]] = field(default_factory=list)

    def outputs(self, grade_id: str) -> list[dict[str, Any]]:
        return next(
            cell.get("outputs", [])
            for cell in self.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
        )

    def probe_outputs(self) -> list[list[dict[str, Any]]]:
        return [cell.get("outputs", []) for cell in self.cells if "".join(cell["source"]).startswith(PROBE)]

    def enames(self, grade_id: str) -> list[str]:
        return [output["ename"] for output in self.outputs(grade_id) if output["output_type"] == "error"]

    def text(self, grade_id: str) -> str:
        return stream_text(self.outputs(grade_id))

    def report(self) -> str:
        """What the trainee reads under the hostile answer cell (or, if nothing, under the add tests)."""
        for grade_id in ("sol-add", "test-add"):
            errors = [
                f"{output['ename']}: {output['evalue']}".strip().rstrip(":")
                for output in self.outputs(grade_id)
                if output["output_type"] == "error"
            ]
            text = self.text(grade_id).strip()
            shown = "; ".join(errors) or (text.splitlines()[0][:120] if text else "")
            if shown:
                return shown if grade_id == "sol-add" else f"{grade_id}: {shown}"
        return "(no output)"


def stream_text(outputs: list[dict[str, Any]]) -> str:
    return "".join(
        "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
        for output in outputs
        if output["output_type"] == "stream"
    )


@pytest.fixture
def grade(grade_pending, people, upload_limits) -> Callable[..., Graded]:
    """grade(assignment, data, user=trainee1) -> Graded: submit through services and run the real worker."""

    def run(assignment: Assignment, data: bytes, user: User | None = None) -> Graded:
        submission, created = services.submit(assignment, user or people["trainee"], data, **upload_limits)
        assert created
        start = time.monotonic()
        assert grade_pending() in (["autograded"], ["graded"])
        seconds = time.monotonic() - start
        stored = json.loads(submission.autograded_notebook or "{}")
        return Graded(submission=submission, seconds=seconds, cells=stored.get("cells", []))

    return run


def leftover_processes(*markers: str) -> list[str]:
    """Live processes on the host whose command line holds a marker, and any sandbox launcher (bwrap or
    its cgroup-joining shell) that is still a child of this test process, zombie or not."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    left = []
    warm_sandbox = warm.current()
    if warm_sandbox is not None:  # the idle warm sandbox stays by design; a run left in it does not
        left += [f"{warm_sandbox.leftover_processes()} process(es) of a run"] * bool(
            warm_sandbox.leftover_processes()
        )
    idle_launcher = warm_sandbox.process.pid if warm_sandbox is not None and warm_sandbox.process else None
    for line in listing.splitlines():
        pid, ppid, stat, args = (line.split(None, 3) + ["", "", "", ""])[:4]
        if int(pid) in (os.getpid(), idle_launcher) or args.startswith("ps "):
            continue
        ours = int(ppid) == os.getpid() and ("bwrap" in args or "lms-sandbox" in args)
        if ours or (not stat.startswith("Z") and any(marker in args for marker in markers)):
            left.append(line.strip())
    return left


def host_files_named(token: str, roots: tuple[Path, ...], max_depth: int = 4) -> list[str]:
    """Paths under ``roots`` (walked ``max_depth`` levels deep) whose name contains ``token``."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if len(Path(folder).relative_to(root).parts) >= max_depth:
                dirs[:] = []
            found += [os.path.join(folder, name) for name in files + dirs if token in name]
    return found


# --- hostile answers -------------------------------------------------------------------------------------

INFINITE_LOOP = "while True:\n    pass"

HUGE_ALLOCATION = "hoard = bytearray(8 * 1024**3)"

GROWING_LIST = """\
hoard = []
while True:
    hoard.append(bytearray(10 * 1024**2))"""

# The kernel's connection file names its socket directory, which every sandbox process of this run has on
# its command line; children take TOKEN as their name so that the host can look for them afterwards.
FORK_BOMB = """\
import json, os, sys
children = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/sleep", ["sleep-TOKEN", "600"])
        children.append(pid)
except OSError as error:
    refusal = type(error).__name__
kernel_dir = os.path.dirname(sys.argv[2])
print(json.dumps({"forked": len(children), "refusal": refusal, "kernel_dir": kernel_dir}))"""

FILL_DISK = """\
import json, os
chunk = b"x" * 1024**2
report = {}
for path in (os.path.expanduser("~/big-TOKEN"), "/tmp/big-TOKEN", "big-TOKEN"):
    written = 0
    try:
        with open(path, "wb") as handle:
            while True:
                handle.write(chunk)
                handle.flush()
                written += 1
    except OSError as error:
        report[path] = [written, type(error).__name__]
print(json.dumps(report))"""

FLOOD_OUTPUT = """\
line = "y" * 999
for _ in range(200_000):
    print(line)"""

NETWORK = """\
import json, socket
report = {}
for host, port in (("1.1.1.1", 80), ("127.0.0.1", 5432)):
    try:
        socket.create_connection((host, port), 3).close()
        report[host] = "connected"
    except OSError as error:
        report[host] = type(error).__name__
print(json.dumps(report))"""

# Looks everywhere a careless sandbox would expose: the instance folder, the LMS database, the host's
# secrets, the worker's environment, and any notebook or gradebook on reachable disks. Files of the
# interpreter's own installation (bound read-only, public packages) are only searched for the secret.
READ_OTHER_FILES = """\
import json, os, sys
secret = bytes.fromhex("SECRET_HEX")
interpreter = tuple(sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}))
def readable(path):
    try:
        if os.path.isdir(path):
            return sorted(os.listdir(path))
        with open(path, "rb") as handle:
            return handle.read(64).hex()
    except OSError as error:
        return type(error).__name__
report = {
    "instance": readable("INSTANCE"),
    "database": readable("DATABASE"),
    "shadow": readable("/etc/shadow"),
    "root": readable("/root"),
    "environ": sorted(os.environ),
    "notebooks": [],
    "gradebooks": [],
    "secret_in": [],
    "walked": 0,
}
for top in ("/home", "/tmp", "/work", "/srv", "/var", "/root", "/mnt", "/opt"):
    for folder, dirs, files in os.walk(top):
        report["walked"] += len(files)
        if report["walked"] > 300_000:
            break
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".ipynb") or name == "gradebook.db":
                if not path.startswith(interpreter):
                    report["notebooks" if name.endswith(".ipynb") else "gradebooks"].append(path)
                try:
                    with open(path, "rb") as handle:
                        if secret in handle.read():
                            report["secret_in"].append(path)
                except OSError:
                    pass
report["top"] = sorted(os.listdir("/"))
print(json.dumps(report))"""

SYSTEM_EXIT = "import sys\nsys.exit(1)"

EXIT_PROCESS = "import os\nos._exit(0)"

KILL_KERNEL = "import os\nos.kill(os.getpid(), 9)"

FAKE_ASSERTION_ERROR = """\
import builtins
builtins.AssertionError = type("X", (Exception,), {})
AssertionError = builtins.AssertionError
def add(a, b):
    return 0"""

WRAPPED_IMPORT = """\
import builtins
real_import = builtins.__import__
def quiet_import(name, *args, **kwargs):
    if name in ("nose", "pytest", "unittest"):
        raise ImportError(name)
    return real_import(name, *args, **kwargs)
builtins.__import__ = quiet_import
def add(a, b):
    return 0"""

SWALLOW_EXCEPTIONS = """\
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
def add(a, b):
    return 0"""

SILENT_TRACEBACKS = """\
get_ipython().showtraceback = lambda *args, **kwargs: None
def add(a, b):
    return 0"""

DROP_ASSERTS = """\
import ast
class DropAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
get_ipython().ast_transformers.append(DropAsserts())
def add(a, b):
    return 0"""

BLANK_LATER_CELLS = """\
get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
def add(a, b):
    return 0"""


def kernel_process_dir(graded: Graded) -> str:
    return str(json.loads(graded.text("sol-add"))["kernel_dir"])


def check_timeout(graded: Graded, context: dict[str, Any]) -> None:
    assert "CellTimeoutError" in graded.enames("sol-add")
    assert graded.seconds < TOTAL_TIMEOUT / 2  # the cell's limit stopped it, not the notebook's


def check_memory_error(graded: Graded, context: dict[str, Any]) -> None:
    assert graded.enames("sol-add") == ["MemoryError"]
    assert graded.outputs("test-mul") == []  # the kernel survived: later cells ran and passed


def check_fork_bomb(graded: Graded, context: dict[str, Any]) -> None:
    report = json.loads(graded.text("sol-add"))
    assert report["refusal"] in ("BlockingIOError", "OSError")
    assert 0 < report["forked"] < PROCESSES
    assert leftover_processes(TOKEN, kernel_process_dir(graded)) == []


def check_disk(graded: Graded, context: dict[str, Any]) -> None:
    report = json.loads(graded.text("sol-add"))
    assert len(report) == 3
    for written_mib, error in report.values():
        assert error == "OSError"  # ENOSPC on the full tmpfs, EFBIG at the file size limit
        assert written_mib <= DISK_BYTES // 1024**2
    assert host_files_named(TOKEN, (Path("/tmp"), Path.home())) == []


def check_output(graded: Graded, context: dict[str, Any]) -> None:
    text = graded.text("sol-add")
    assert text.startswith("y" * 999 + "\n" + "y" * 999)  # the start is kept, up to the limit
    assert text.endswith(OUTPUT_LIMIT_NOTE)
    assert len(text) <= OUTPUT_BYTES + len(OUTPUT_LIMIT_NOTE)
    assert len(graded.submission.autograded_notebook or "") < 2 * 1024**2


def check_network(graded: Graded, context: dict[str, Any]) -> None:
    report = json.loads(graded.text("sol-add"))
    assert report == {"1.1.1.1": "OSError", "127.0.0.1": "ConnectionRefusedError"}  # only its own loopback


# What ipykernel and IPython add to the kernel's environment themselves.
IPYKERNEL_ENVIRONMENT = {
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "FORCE_COLOR",
    "GIT_PAGER",
    "PAGER",
    "PWD",
    "TERM",
    "PYDEVD_USE_FRAME_EVAL",
}


def check_other_files(graded: Graded, context: dict[str, Any]) -> None:
    assert graded.enames("sol-add") == []  # the walk finished within the cell's time
    report = json.loads(graded.text("sol-add"))
    assert report["instance"] == report["database"] == report["shadow"] == "FileNotFoundError"
    # /root is there only as the way to the interpreter (pyenv installs under /root on these machines)
    for entry in report["root"]:
        assert any(root.startswith(f"/root/{entry}/") for root in python_roots())
    allowed = set(sandbox_environment()) | IPYKERNEL_ENVIRONMENT
    assert set(report["environ"]) <= allowed
    assert not [name for name in report["environ"] if name.startswith("LMS_") or "SECRET" in name]
    assert report["notebooks"] == report["gradebooks"] == report["secret_in"] == []
    assert report["walked"] > 1000  # the walk did look (the interpreter's files at least)


def check_system_exit(graded: Graded, context: dict[str, Any]) -> None:
    assert graded.enames("sol-add") == ["SystemExit"]
    assert graded.outputs("test-mul") == []


def check_kernel_stopped(graded: Graded, context: dict[str, Any]) -> None:
    assert graded.enames("sol-add") == [KERNEL_STOPPED]
    for grade_id in ("test-add", "sol-mul", "test-mul"):
        assert graded.enames(grade_id) == [NOT_RUN]


def check_hidden_test_failed(graded: Graded, context: dict[str, Any]) -> None:
    assert graded.enames("test-add") == ["AssertionError"]
    assert graded.outputs("test-mul") == []


@dataclass(frozen=True)
class Attack:
    code: str
    score: float
    check: Callable[[Graded, dict[str, Any]], None]
    cell_timeout: int = CELL_TIMEOUT


ATTACKS = [
    pytest.param(Attack(INFINITE_LOOP, 3, check_timeout), id="infinite-loop"),
    pytest.param(Attack(HUGE_ALLOCATION, 3, check_memory_error), id="memory-8GiB-bytearray"),
    pytest.param(Attack(GROWING_LIST, 3, check_memory_error), id="memory-growing-list"),
    pytest.param(Attack(FORK_BOMB, 3, check_fork_bomb), id="fork-bomb"),
    pytest.param(Attack(FILL_DISK, 3, check_disk), id="fill-disk"),
    pytest.param(Attack(FLOOD_OUTPUT, 3, check_output), id="200MB-output"),
    pytest.param(Attack(NETWORK, 3, check_network), id="network"),
    # walking every readable file takes a few seconds, more on a loaded machine: room for the whole walk
    pytest.param(Attack(READ_OTHER_FILES, 3, check_other_files, cell_timeout=45), id="read-other-files"),
    pytest.param(Attack(SYSTEM_EXIT, 3, check_system_exit), id="sys-exit"),
    pytest.param(Attack(EXIT_PROCESS, 0, check_kernel_stopped), id="os-exit"),
    pytest.param(Attack(KILL_KERNEL, 0, check_kernel_stopped), id="kill-9"),
    pytest.param(Attack(FAKE_ASSERTION_ERROR, 3, check_hidden_test_failed), id="fake-AssertionError"),
    pytest.param(Attack(WRAPPED_IMPORT, 3, check_hidden_test_failed), id="wrapped-import"),
    pytest.param(Attack(SWALLOW_EXCEPTIONS, 3, check_hidden_test_failed), id="swallow-exceptions"),
    pytest.param(Attack(SILENT_TRACEBACKS, 3, check_hidden_test_failed), id="silent-tracebacks"),
    pytest.param(
        Attack(DROP_ASSERTS, 3, check_hidden_test_failed),
        id="drop-asserts",
    ),
    pytest.param(
        Attack(BLANK_LATER_CELLS, 3, check_hidden_test_failed),
        id="blank-later-cells",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_answer_gets_its_true_score_within_bounds(
    attack: Attack, app, create_assignment, grade, record_result
) -> None:
    assignment = create_assignment(cell_timeout=attack.cell_timeout, total_timeout=TOTAL_TIMEOUT)
    context = {
        "instance": app.instance_path,
        "database": app.config["DATABASE_URL"].removeprefix("sqlite:///"),
    }
    # Real files where the attack looks for them, so that "not found" means the sandbox hid them.
    Path(context["instance"]).mkdir(parents=True, exist_ok=True)
    (Path(context["instance"]) / "secret.txt").write_text(HIDDEN_SECRET)
    code = (
        attack.code.replace("TOKEN", TOKEN)
        .replace("SECRET_HEX", HIDDEN_SECRET.encode().hex())
        .replace("INSTANCE", context["instance"])
        .replace("DATABASE", context["database"])
    )
    graded = grade(assignment, notebook_bytes(assignment, code))
    record_result("score", graded.submission.auto_score)
    record_result("message", graded.report())
    record_result("seconds", round(graded.seconds, 1))

    assert graded.submission.status == SubmissionStatus.AUTOGRADED  # graded; the manual answer waits
    assert graded.submission.message == ""
    assert graded.seconds < assignment.total_timeout + 30
    assert leftover_processes() == []
    assert graded.submission.auto_score == attack.score
    attack.check(graded, context)


SLOW_CELL = "import time\ntime.sleep(CELL_TIMEOUT - 1)"


# A manager whose kernel hit the total time limit is dropped with its log still open (the bug of
# test_a_stopped_kernel_leaves_nothing_behind): ignore that warning here, where it is known and expected.
def test_slow_cells_stop_at_the_total_time_limit(create_assignment, grade, record_result) -> None:
    assignment = create_assignment(cell_timeout=CELL_TIMEOUT, total_timeout=30)
    slow = SLOW_CELL.replace("CELL_TIMEOUT", str(CELL_TIMEOUT))
    # each cell stays under the cell limit; together they pass the notebook's limit before the tests run
    graded = grade(assignment, notebook_bytes(assignment, CORRECT_ADD, after_add=(slow,) * 10))
    record_result("score", graded.submission.auto_score)
    record_result("message", f"{TIME_LIMIT}: the total time limit for the notebook was reached")
    record_result("seconds", round(graded.seconds, 1))

    stopped = [names for outputs in graded.probe_outputs() if (names := _enames(outputs))]
    assert stopped[0] == [TIME_LIMIT] and all(names == [NOT_RUN] for names in stopped[1:])
    assert graded.enames("test-add") == graded.enames("test-mul") == [NOT_RUN]
    assert graded.submission.status == SubmissionStatus.AUTOGRADED
    assert graded.submission.auto_score == 0
    assert graded.seconds < 30 + 30
    assert leftover_processes() == []


def _enames(outputs: list[dict[str, Any]]) -> list[str]:
    return [output["ename"] for output in outputs if output["output_type"] == "error"]


def sandbox_leftovers() -> dict[str, list[str]]:
    """What this process still holds of sandboxes whose grading has finished: armed total-time watchdogs,
    open kernel logs, and managers that still own a cgroup or a socket directory."""
    watchdogs = [
        thread.name
        for thread in threading.enumerate()
        if getattr(getattr(thread, "function", None), "__name__", "") == "_time_is_up"
    ]
    logs = []
    for fd in Path("/proc/self/fd").iterdir():
        with suppress(OSError):
            target = os.readlink(fd)
            if "/lms-kernel-" in target:
                logs.append(target)
    owners = [
        str(manager.ipc_dir)
        for manager in gc.get_objects()
        if isinstance(manager, SandboxedKernelManager) and (manager.cgroup.dirs or manager.ipc_dir.exists())
    ]
    return {"watchdogs": watchdogs, "open_files": logs, "managers": owners}


@pytest.mark.parametrize("sol_add", [EXIT_PROCESS, KILL_KERNEL], ids=["os-exit", "kill-9"])
def test_a_stopped_kernel_leaves_nothing_behind(sol_add: str, assignment, grade) -> None:
    graded = grade(assignment, notebook_bytes(assignment, sol_add))
    assert graded.enames("test-add") == [NOT_RUN]
    assert sandbox_leftovers() == {"watchdogs": [], "open_files": [], "managers": []}


# A run writes every startup hook it can think of; the next run (the same trainee's second attempt, and
# another trainee) looks for them. Each run has a fresh sandbox, so none may be there.
PLANT_STARTUP_FILES = """\
import builtins, os
planted = {
    os.path.expanduser("~/.ipython/profile_default/startup/x.py"): "PWNED = 'TOKEN'\\n",
    "/tmp/sitecustomize.py": "import builtins\\nbuiltins.PWNED = 'TOKEN'\\n",
    "sitecustomize.py": "import builtins\\nbuiltins.PWNED = 'TOKEN'\\n",
}
for path, text in planted.items():
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
builtins.PWNED = os.environ["PWNED"] = "TOKEN"
print(sorted(os.path.exists(path) for path in planted))
def add(a, b):
    return 0"""

LOOK_FOR_STARTUP_FILES = """\
import builtins, json, os
print(json.dumps({
    "global": "PWNED" in globals(),
    "builtin": hasattr(builtins, "PWNED"),
    "environ": "PWNED" in os.environ,
    "files": [path for path in (
        os.path.expanduser("~/.ipython/profile_default/startup/x.py"),
        "/tmp/sitecustomize.py",
        "sitecustomize.py",
    ) if os.path.exists(path)],
}))
def add(a, b):
    return a + b"""


def test_nothing_a_run_writes_reaches_the_next_run(
    assignment, grade, people, create_user, record_result
) -> None:
    planted = grade(assignment, notebook_bytes(assignment, PLANT_STARTUP_FILES.replace("TOKEN", TOKEN)))
    assert planted.text("sol-add").strip() == "[True, True, True]"
    assert planted.submission.auto_score == 3

    other = create_user(Role.TRAINEE)
    cohorts.enroll(other, assignment.cohort)
    db.session.commit()
    for user in (people["trainee"], other):  # a second attempt, and another trainee
        later = grade(assignment, notebook_bytes(assignment, LOOK_FOR_STARTUP_FILES), user=user)
        assert json.loads(later.text("sol-add")) == {
            "global": False,
            "builtin": False,
            "environ": False,
            "files": [],
        }
        assert later.submission.auto_score == 5
        assert later.submission.status == SubmissionStatus.AUTOGRADED
    record_result("score", f"{planted.submission.auto_score:g} then {later.submission.auto_score:g}")
    record_result("message", "next run: no PWNED global, builtin, variable or file")
    record_result("seconds", round(max(planted.seconds, later.seconds), 1))
    # the host is untouched too
    for path in (Path.home() / ".ipython/profile_default/startup/x.py", Path("/tmp/sitecustomize.py")):
        assert not path.exists() or TOKEN not in path.read_text()


# A trainee cell after the tests prints the kernel's input history and the hidden test's failure (whose
# message is the secret), hoping that the feedback shows them.
PRINT_HISTORY = """\
import sys
print(In)
print(_ih)
print(repr(getattr(sys, "last_value", None)))
print(get_ipython().user_ns.get("_i2"))"""


def test_feedback_never_shows_hidden_tests_a_later_cell_printed(assignment, grade, record_result) -> None:
    from graders.feedback import CellScore, FeedbackSummary, feedback_notebook, render_feedback

    wrong_on_hidden_test = "def add(a, b):\n    return 3"  # passes add(1, 2) == 3, fails the hidden one
    graded = grade(assignment, notebook_bytes(assignment, wrong_on_hidden_test, at_end=(PRINT_HISTORY,)))
    submission = graded.submission
    assert submission.auto_score == 3
    assert HIDDEN_SECRET in stream_text(graded.probe_outputs()[0])  # the cell did print the hidden test

    autograded = nbformat.reads(submission.autograded_notebook or "", as_version=4)
    source = nbformat.reads(assignment.source_notebook, as_version=4)
    shown = nbformat.writes(feedback_notebook(autograded, source))
    scores = {
        cell.grade_id: CellScore(cell.grade_id, cell.max_points, cell.points, kind=cell.kind.value)
        for cell in submission.cells
    }
    page = render_feedback(
        autograded, source, scores, FeedbackSummary("Small exercise", "trainee1", "today", 3.0, 7.0)
    )
    record_result("score", submission.auto_score)
    record_result("message", "feedback: hidden test failed; history output redacted")
    record_result("seconds", round(graded.seconds, 1))
    for text in (shown, page):
        assert HIDDEN_SECRET not in text
        assert "add(20, 22)" not in text
        assert "BEGIN HIDDEN TESTS" not in text


# Test cells run outside the kernel's history, but trainee code still sees every cell before it runs: a hook
# set in the answer records the test cells (an IPython event hook, which the shell could drop again, or a
# Python audit hook on compile, which nothing can remove), and a later cell prints them base64-encoded,
# which no redaction of the feedback's text can recognise.
RECORD_BY_EVENT = """\
recorded = []
get_ipython().events.register("pre_run_cell", lambda info: recorded.append(info.raw_cell))
def add(a, b):
    return a + b"""

RECORD_BY_AUDIT_HOOK = """\
import sys
recorded = []
def record(event, args):
    if event == "compile" and isinstance(args[0], (str, bytes)):
        recorded.append(args[0] if isinstance(args[0], str) else args[0].decode(errors="replace"))
sys.addaudithook(record)
def add(a, b):
    return a + b"""

PRINT_RECORDED_ENCODED = """\
import base64
print(base64.b64encode("\\n".join(recorded).encode()).decode())"""


@pytest.mark.parametrize(
    "recorder", [RECORD_BY_EVENT, RECORD_BY_AUDIT_HOOK], ids=["event-hook", "audit-hook"]
)
def test_feedback_never_shows_hidden_tests_recorded_and_printed_encoded(
    recorder: str, assignment, grade
) -> None:
    from graders.feedback import feedback_notebook

    graded = grade(assignment, notebook_bytes(assignment, recorder, at_end=(PRINT_RECORDED_ENCODED,)))
    assert graded.submission.auto_score == 5
    autograded = nbformat.reads(graded.submission.autograded_notebook or "", as_version=4)
    source = nbformat.reads(assignment.source_notebook, as_version=4)
    shown = feedback_notebook(autograded, source)
    printed = stream_text(next(cell for cell in shown.cells if cell.source.startswith(PROBE)).outputs)
    # what trainee code printed after hidden tests ran is withheld from feedback
    assert "Output not shown" in printed
    assert HIDDEN_SECRET not in printed


# --- bad uploads -----------------------------------------------------------------------------------------


def notebook_v3() -> bytes:
    return json.dumps(
        {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}
    ).encode()


def with_attachment(assignment: Assignment, size: int) -> bytes:
    notebook = json.loads(answer(assignment))
    payload = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * size).decode()
    notebook["cells"].append(
        {
            "cell_type": "markdown",
            "id": "picture",
            "metadata": {},
            "source": "![plot](attachment:plot.png)",
            "attachments": {"plot.png": {"image/png": payload}},
        }
    )
    return json.dumps(notebook).encode()


def with_cells(assignment: Assignment, count: int) -> bytes:
    notebook = json.loads(answer(assignment))
    notebook["cells"] += [
        {"cell_type": "raw", "id": f"c{n}", "metadata": {}, "source": ""} for n in range(count)
    ]
    return json.dumps(notebook).encode()


def other_source() -> nbformat.NotebookNode:
    """An assignment with no graded cell in common with small_source."""
    return new_notebook(
        cells=[
            new_markdown_cell("# Another exercise", metadata=cell_meta("other-intro", locked=True)),
            new_code_cell(
                "def sub(a, b):\n    ### BEGIN SOLUTION\n    return a - b\n    ### END SOLUTION",
                metadata=cell_meta("sol-sub", solution=True),
            ),
            new_code_cell(
                "assert sub(3, 2) == 1", metadata=cell_meta("test-sub", grade=True, locked=True, points=4)
            ),
        ],
        metadata=small_source().metadata,
    )


BAD_UPLOADS = [
    pytest.param(lambda a, create: b'{"cells": [', "not_json", id="invalid-json"),
    pytest.param(lambda a, create: notebook_v3(), "old_format", id="nbformat-3"),
    pytest.param(lambda a, create: with_attachment(a, 50 * 1024**2), "too_large", id="50MB-attachment"),
    pytest.param(lambda a, create: with_cells(a, 10_000), "too_many_cells", id="10000-cells"),
    pytest.param(lambda a, create: b'{"cells": "\xff\xfe caf\xe9"}', "not_utf8", id="not-utf8"),
    pytest.param(lambda a, create: other_answer(create), "wrong_assignment", id="another-assignment"),
    pytest.param(
        lambda a, create: other_answer(create, marked=False),
        "wrong_assignment",
        id="another-assignment-unmarked",
    ),
]


def other_answer(create_assignment: Callable[..., Assignment], marked: bool = True) -> bytes:
    """A correct answer to another assignment of the cohort, with or without the LMS's assignment mark."""
    notebook = json.loads(answer(create_assignment(other_source(), slug="other", max_points=4.0)))
    if not marked:
        notebook["metadata"].pop("lms", None)
    return json.dumps(notebook).encode()


def autograde_jobs() -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(GradingJob).where(GradingJob.kind == JobKind.AUTOGRADE)
        )
        or 0
    )


@pytest.mark.parametrize(("make", "code"), BAD_UPLOADS)
def test_bad_upload_is_refused_before_anything_is_stored(
    make: Callable[[Assignment, Callable[..., Assignment]], bytes],
    code: str,
    assignment,
    create_assignment,
    people,
    upload_limits,
    record_result,
) -> None:
    data = make(assignment, create_assignment)
    with pytest.raises(UploadRejected) as rejected:
        services.submit(assignment, people["trainee"], data, **upload_limits)
    record_result("message", rejected.value.message)
    assert rejected.value.code == code
    assert rejected.value.message.strip()
    assert HIDDEN_SECRET not in rejected.value.message
    assert services.submissions_of(people["trainee"], assignment) == []
    assert autograde_jobs() == 0


def test_deleted_test_cells_are_restored_and_correct_answers_keep_full_marks(
    assignment, grade, record_result
) -> None:
    notebook = json.loads(answer(assignment))
    notebook["cells"] = [
        cell
        for cell in notebook["cells"]
        if cell["metadata"]["nbgrader"]["grade_id"] not in ("test-add", "test-mul")
    ]
    graded = grade(assignment, json.dumps(notebook).encode())
    submission = graded.submission
    record_result("score", submission.auto_score)
    record_result("message", f"restored: {', '.join(submission.repairs['restored'])}")
    record_result("seconds", round(graded.seconds, 1))
    assert set(submission.repairs["restored"]) == {"test-add", "test-mul"}
    assert submission.auto_score == 5
    assert {cell.grade_id: cell.points for cell in submission.cells} == {
        "test-add": 2.0,
        "test-mul": 3.0,
        "answer": None,
    }


@pytest.mark.parametrize(
    ("sol_add", "score"), [(CORRECT_ADD, 5), (WRONG_ADD, 3)], ids=["correct", "wrong-add"]
)
def test_edited_metadata_earns_nothing_and_is_recorded(
    sol_add: str, score: float, assignment, grade, record_result
) -> None:
    notebook = json.loads(notebook_bytes(assignment, sol_add))
    for cell in notebook["cells"]:
        meta = cell["metadata"]["nbgrader"]
        if meta["grade_id"] == "test-add":  # worth 100, and turned into an answer the trainee "solved"
            meta.update(points=100, solution=True)
            cell["source"] = "pass"
    notebook["cells"].append(
        {
            "cell_type": "code",
            "id": "fake",
            "execution_count": None,
            "outputs": [],
            "metadata": cell_meta("fake-grade", grade=True, locked=True, points=50),
            "source": "assert True",
        }
    )
    graded = grade(assignment, json.dumps(notebook).encode())
    submission = graded.submission
    record_result("score", submission.auto_score)
    record_result(
        "message", f"restored {submission.repairs['restored']}, stripped {submission.repairs['stripped']}"
    )
    record_result("seconds", round(graded.seconds, 1))
    assert "test-add" in submission.repairs["restored"]
    assert submission.repairs["stripped"] == ["fake-grade"]
    assert {cell.grade_id: cell.max_points for cell in submission.cells} == {
        "test-add": 2.0,
        "test-mul": 3.0,
        "answer": 2.0,
    }
    assert submission.auto_score == score  # the assignment's tests and points, never the claimed 150
    assert submission.max_score == 7
