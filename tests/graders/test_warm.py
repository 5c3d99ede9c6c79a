"""The warm sandbox (graders.warm and the zygote inside it), driven directly: what one run leaves for the
next, what a run can reach, and that both grading engines give the same scores."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from graders import runs, services, warm
from graders.nbgrader_backend import _SHELL_RESET
from graders.sandbox import Limits
from tests.graders.conftest import answer

LIMITS = {"max_bytes": 20_000_000, "max_cells": 2000}


@pytest.fixture
def sandbox() -> Iterator[warm.WarmSandbox]:
    box = warm.WarmSandbox(
        warm.WarmKey(limits=Limits(cell_timeout=5, total_timeout=60), preload=(), mode="bwrap")
    )
    box.start()
    yield box
    box.close()


def run_json(box: warm.WarmSandbox, code: str) -> object:
    """Run ``code`` (which prints one JSON document last) in the current run and decode what it printed."""
    reply = box.run(code, store_history=True, timeout=5)
    text = "".join(
        o["text"] for o in reply["outputs"] if o["output_type"] == "stream" and o["name"] == "stdout"
    )
    assert reply["status"] == "ok", reply
    return json.loads(text.strip().splitlines()[-1])


LEAVE_TRACES = """
import json, os, subprocess
written = []
for folder in ("/tmp", os.path.expanduser("~"), "/dev/shm", ".", "/", "/opt", "/usr", "/dev"):
    try:
        with open(os.path.join(folder, "trace-of-run"), "w") as handle:
            handle.write("x")
        written.append(folder)
    except OSError:
        pass
subprocess.Popen(["sleep", "600"], start_new_session=True)
print(json.dumps(written))
"""

FIND_TRACES = """
import json, os
folders = ("/tmp", os.path.expanduser("~"), "/dev/shm", ".")
found = [f for f in folders if os.path.exists(os.path.join(f, "trace-of-run"))]
print(json.dumps({"found": found, "sleepers": [p for p in os.listdir("/proc") if p.isdigit() and
    open(f"/proc/{p}/cmdline", "rb").read().startswith(b"sleep")]}))
"""


def test_nothing_of_one_run_is_there_for_the_next(sandbox) -> None:
    sandbox.begin({}, 60)
    written = run_json(sandbox, LEAVE_TRACES)
    assert sorted(written) == sorted(["/tmp", "/home/trainee", "/dev/shm", "."])  # the rest is read-only
    sandbox.end()
    assert sandbox.leftover_processes() == 0  # the background sleeper died with its run

    sandbox.begin({}, 60)
    assert run_json(sandbox, FIND_TRACES) == {"found": [], "sleepers": []}
    sandbox.end()


def test_a_run_gets_its_data_files_and_a_kernels_view(sandbox) -> None:
    sandbox.begin({"data/readings.csv": b"t,v\n0,1\n"}, 60)
    seen = run_json(
        sandbox,
        "import json, os, sys, socket\n"
        "print(json.dumps([open('data/readings.csv').read(), os.getuid(), sys.argv[1],"
        " socket.gethostname(), sorted(os.environ)[:3]]))",
    )
    assert seen == ["t,v\n0,1\n", 65534, "-f", "sandbox", ["HOME", "IPYTHONDIR", "JUPYTER_PLATFORM_DIRS"]]
    sandbox.end()


def test_a_run_that_kills_everything_it_sees_costs_only_itself(sandbox) -> None:
    sandbox.begin({}, 60)
    with pytest.raises(warm.RunStopped):
        sandbox.run(
            "import os, signal\n"
            "for pid in sorted((int(p) for p in os.listdir('/proc') if p.isdigit()), reverse=True):\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass",
            store_history=True,
            timeout=5,
        )
    assert sandbox.alive  # the zygote is out of the run's reach (another PID namespace)
    sandbox.begin({}, 60)
    assert run_json(sandbox, "print(6 * 7)") == 42
    sandbox.end()


def test_a_stuck_cell_is_interrupted_and_the_run_goes_on(sandbox) -> None:
    sandbox.begin({}, 60)
    sandbox.run("x = 1", store_history=True, timeout=5)
    with pytest.raises(warm.CellTimedOut) as timed_out:
        sandbox.run("while True:\n    pass", store_history=True, timeout=1)
    assert timed_out.value.outputs[-1]["ename"] == "KeyboardInterrupt"
    assert run_json(sandbox, "print(x + 1)") == 2
    sandbox.end()


# --- running ahead (graders.runs) ---------------------------------------------------------------------

RUN_LIMITS = Limits(cell_timeout=5, total_timeout=60)
TAMPER_WITH_THE_RESET = """
import builtins
real_import = builtins.__import__

def guarded(name, *args, **kwargs):
    if name.startswith("IPython"):
        raise ImportError(name)
    return real_import(name, *args, **kwargs)

builtins.__import__ = guarded
"""


def stdout_of(outcome: runs.CellOutcome) -> str:
    return "".join(o["text"] for o in outcome.reply.get("outputs", []) if o.get("name") == "stdout")


def test_a_run_ahead_is_taken_only_for_exactly_its_cells_and_files(sandbox) -> None:
    cells = [runs.CellRequest("x = 41", False), runs.CellRequest("print(x + 1)", False)]
    ahead = runs.Ahead(sandbox, cells, {"data.txt": b"1"}, RUN_LIMITS, _SHELL_RESET)
    outcomes = ahead.take(sandbox, list(cells), {"data.txt": b"1"}, RUN_LIMITS)
    assert outcomes is not None
    assert [o.kind for o in outcomes] == [runs.RAN, runs.RAN] and stdout_of(outcomes[1]) == "42\n"

    for other_cells, other_files in (
        ([runs.CellRequest("x = 41", False), runs.CellRequest("print(x + 1)", True)], {"data.txt": b"1"}),
        (cells, {"data.txt": b"2"}),
    ):
        ahead = runs.Ahead(sandbox, cells, {"data.txt": b"1"}, RUN_LIMITS, _SHELL_RESET)
        assert ahead.take(sandbox, other_cells, other_files, RUN_LIMITS) is None
    # the sandbox is free again: the notebook actually asked for runs now
    again = runs.run_cells(sandbox, cells, {}, RUN_LIMITS, _SHELL_RESET)
    assert stdout_of(again[1]) == "42\n"
    assert sandbox.leftover_processes() == 0


def test_a_run_ahead_keeps_timeouts_crashes_and_the_shell_reset(sandbox) -> None:
    cells = [
        runs.CellRequest(TAMPER_WITH_THE_RESET, False),
        runs.CellRequest("assert True", True),  # its shell reset cannot answer: tampered, not run
        runs.CellRequest("while True:\n    pass", False),
        runs.CellRequest("print('after the loop')", False),
        runs.CellRequest("import os\nos._exit(3)", False),
        runs.CellRequest("print('never')", False),
    ]
    limits = Limits(cell_timeout=1, total_timeout=60)
    outcomes = runs.Ahead(sandbox, cells, {}, limits, _SHELL_RESET).take(sandbox, cells, {}, limits)
    assert outcomes is not None
    assert [o.kind for o in outcomes] == [
        runs.RAN,
        runs.TAMPERED,
        runs.TIMED_OUT,
        runs.RAN,
        runs.CRASHED,
        runs.NOT_RUN,
    ]
    assert stdout_of(outcomes[3]) == "after the loop\n"
    assert outcomes[5].message == runs.STOPPED_BEFORE


def test_what_a_run_leaves_never_reaches_the_run_ahead_after_it(sandbox) -> None:
    first = runs.run_cells(sandbox, [runs.CellRequest(LEAVE_TRACES, False)], {}, RUN_LIMITS, _SHELL_RESET)
    assert first[0].kind == runs.RAN
    look = [runs.CellRequest(FIND_TRACES, False)]
    outcomes = runs.Ahead(sandbox, look, {}, RUN_LIMITS, _SHELL_RESET).take(sandbox, look, {}, RUN_LIMITS)
    assert outcomes is not None
    assert json.loads(stdout_of(outcomes[0]).splitlines()[-1]) == {"found": [], "sleepers": []}


def test_an_estimator_result_is_recorded_as_text_the_feedback_can_show() -> None:
    box = warm.WarmSandbox(warm.WarmKey(limits=RUN_LIMITS, preload=("sklearn.linear_model",), mode="bwrap"))
    box.start()
    try:
        box.begin({}, 60)
        reply = box.run(
            "from sklearn.linear_model import Ridge\nRidge(alpha=2.0)", store_history=True, timeout=20
        )
        box.end()
    finally:
        box.close()
    (result,) = [o for o in reply["outputs"] if o["output_type"] == "execute_result"]
    # not scikit-learn's HTML diagram (styles and inputs the feedback page strips): its text form
    assert result["data"] == {"text/plain": "Ridge(alpha=2.0)"}


def test_a_library_mistake_shows_its_whole_traceback_and_none_of_the_warm_up() -> None:
    box = warm.WarmSandbox(warm.WarmKey(limits=RUN_LIMITS, preload=("sklearn.linear_model",), mode="bwrap"))
    box.start()
    try:
        box.begin({}, 60)
        box.run("from sklearn.linear_model import LinearRegression", store_history=True, timeout=20)
        reply = box.run(
            "model = LinearRegression()\nmodel.fit([[1.0], [2.0]], [1.0])", store_history=True, timeout=20
        )
        box.end()
    finally:
        box.close()
    (error,) = [o for o in reply["outputs"] if o["output_type"] == "error"]
    assert error["ename"] == "ValueError"
    assert "inconsistent numbers of samples: [2, 1]" in error["evalue"]
    text = "\n".join(error["traceback"])
    # the trainee's own line, then the library's frames with their source lines (the zygote parsed
    # those files once for a mistake of its own; its code must not show here)
    assert "model.fit([[1.0], [2.0]], [1.0])" in text
    assert "sklearn/utils/validation.py" in text and "check_consistent_length" in text
    assert "L().fit" not in text and "as L" not in text


def test_preloaded_modules_come_from_the_notebooks_imports() -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "source": "import numpy as np\nfrom sklearn.linear_model import Ridge\n%time 1",
            },
            {"cell_type": "code", "source": ["import not_a_module_anywhere\n", "from . import local\n"]},
            {"cell_type": "markdown", "source": "import pandas"},
            {"cell_type": "code", "source": "def broken(:"},
        ]
    }
    assert warm.preload_modules([notebook]) == ("numpy", "sklearn.linear_model")


@pytest.mark.parametrize("engine", ["kernel", "warm"])
def test_both_engines_give_the_same_per_cell_points(
    engine, app, small_assignment, people, grade_pending
) -> None:
    app.config["GRADER_ENGINE"] = engine
    try:
        wrong = {
            "sol-add": "import sys\ndef add(a, b):\n    return 3",
            "sol-mul": "def mul(a, b):\n    print('debug', file=sys.stderr)\n    return a * b",
        }
        submission, _ = services.submit(
            small_assignment, people["trainee"], answer(small_assignment, wrong), **LIMITS
        )
        grade_pending()
        points = {cell.grade_id: cell.points for cell in submission.cells}
        # add: the hidden test fails; mul: correct, but its test cell writes to stderr (nbgrader: no points)
        assert points == {"test-add": 0.0, "test-mul": 0.0, "answer": None}
    finally:
        app.config["GRADER_ENGINE"] = "warm"


def test_an_unknown_engine_stops_the_app_with_the_choices(tmp_path) -> None:
    from lms import ConfigError, create_app

    with pytest.raises(
        ConfigError, match="LMS_GRADER_ENGINE='fast' is not a grading engine: use 'warm' or 'kernel'"
    ):
        create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x", "GRADER_ENGINE": "fast"})
