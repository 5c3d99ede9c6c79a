"""A submission's code cells run in the warm sandbox, kept as plain data: what is sent (requests) and what
came back (outcomes); ``nbgrader_backend`` turns outcomes into notebook outputs.

With one grading worker, the next submission's cells run *ahead*: as soon as a notebook's run ends, a
thread of the grading process starts the next notebook's run in the (same, single) warm sandbox, while
nbgrader records the last one and prepares the next: its bookkeeping is Python in this process, the run is
another process, so the two overlap on two cores. The cells run ahead are a prediction of what nbgrader
will ask for (the submitted cells with the locked ones taken from the gradebook); the outcomes are used
only when nbgrader then asks for exactly those cells with exactly those files, else they are thrown away
and the cells run again. One run at a time, each fresh, as always; only the waiting is gone.
"""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graders import warm
from graders.sandbox import Limits

SWITCH_INTERVAL = 0.0001  # seconds

RAN = "ran"
TIMED_OUT = "timed_out"  # interrupted at the cell timeout; the run went on
CRASHED = "crashed"  # the run stopped during this cell (exit, crash, a limit)
OUT_OF_TIME = "out_of_time"  # the notebook's total time limit was reached during this cell
NOT_RUN = "not_run"  # an earlier cell stopped the run; ``message`` says how
TAMPERED = "tampered"  # the shell reset before this test cell did not answer: the cell did not run

STOPPED_BEFORE = "the kernel had stopped before this cell; it did not run"
RAN_OUT_OF_TIME = "the notebook ran out of time (total time limit); this cell did not run"


@dataclass(frozen=True)
class CellRequest:
    """One non-empty code cell to run, and whether it is a test cell (the shell is reset before it)."""

    source: str
    is_test: bool


@dataclass(frozen=True)
class CellOutcome:
    """What running one requested cell gave."""

    kind: str
    reply: dict[str, Any] = field(default_factory=dict)  # RAN: the run's reply; TIMED_OUT: its outputs
    message: str = ""  # NOT_RUN: why


def run_cells(
    sandbox: warm.WarmSandbox,
    requests: Sequence[CellRequest],
    files: dict[str, bytes],
    limits: Limits,
    reset: str,
) -> list[CellOutcome]:
    """Run ``requests`` as one fresh run of ``sandbox``; ``reset`` is the grader's shell reset, whose
    ``TOKEN`` is replaced by a new secret before each test cell. Raises warm.SandboxBroken only."""
    outcomes: list[CellOutcome] = []
    stopped: str | None = None
    try:
        sandbox.begin(files, limits.total_timeout)
    except warm.RunStopped:
        stopped = STOPPED_BEFORE
    try:
        for request in requests:
            if stopped is not None:
                outcomes.append(CellOutcome(NOT_RUN, message=stopped))
                continue
            token = secrets.token_hex(16)
            try:
                reply = sandbox.run(
                    request.source,
                    store_history=not request.is_test,
                    timeout=limits.cell_timeout,
                    reset=(reset.replace("TOKEN", token), token) if request.is_test else None,
                )
            except warm.CellTimedOut as timeout:
                outcomes.append(CellOutcome(TIMED_OUT, {"outputs": timeout.outputs}))
            except warm.RunStopped as error:
                stopped = RAN_OUT_OF_TIME if error.time_limit else STOPPED_BEFORE
                outcomes.append(CellOutcome(OUT_OF_TIME if error.time_limit else CRASHED))
            else:
                outcomes.append(CellOutcome(TAMPERED if reply.get("tampered") else RAN, reply))
    finally:
        sandbox.end()
    return outcomes


@dataclass(frozen=True)
class Planned:
    """A notebook expected to be graded, and how to predict the cells nbgrader will ask to run."""

    student: str
    notebook: str
    predict: Callable[[], tuple[list[CellRequest], dict[str, bytes]] | None]


class Ahead:
    """One notebook's cells running in a thread, ahead of nbgrader asking for them."""

    def __init__(
        self,
        sandbox: warm.WarmSandbox,
        requests: list[CellRequest],
        files: dict[str, bytes],
        limits: Limits,
        reset: str,
    ) -> None:
        self.sandbox = sandbox
        self.requests = requests
        self.files = files
        self.limits = limits
        self.outcomes: list[CellOutcome] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(reset,), name="lms-run-ahead", daemon=True)
        self._thread.start()

    def _work(self, reset: str) -> None:
        try:
            self.outcomes = run_cells(self.sandbox, self.requests, self.files, self.limits, reset)
        except BaseException as error:  # noqa: BLE001  (handed to the grading thread in take())
            self.error = error

    def wait(self) -> None:
        """Until the run ahead has ended."""
        self._thread.join()

    def take(
        self, sandbox: warm.WarmSandbox, requests: list[CellRequest], files: dict[str, bytes], limits: Limits
    ) -> list[CellOutcome] | None:
        """The outcomes, when they were run for exactly this; None when they must be run (again)."""
        self.wait()
        if self.error is not None:
            if isinstance(self.error, warm.SandboxBroken):
                warm.discard(self.sandbox)
            return None
        same = (sandbox, limits, requests, files) == (self.sandbox, self.limits, self.requests, self.files)
        return self.outcomes if same else None


@dataclass
class Counts:
    """How the runs ahead of this process went (for the command's summary and the tests)."""

    taken: int = 0
    discarded: int = 0


_PLAN: list[Planned] = []
_AHEAD: list[Ahead] = []
_SWITCH_INTERVAL = [sys.getswitchinterval()]
counts = Counts()


def plan(notebooks: Sequence[Planned]) -> None:
    """The notebooks this process will grade next, in order (a single worker's whole list); an empty
    list ends the plan."""
    finish()
    _PLAN[:] = notebooks
    if notebooks:
        counts.taken = counts.discarded = 0
    # The thread running ahead waits for each cell's reply while nbgrader's bookkeeping holds the
    # interpreter lock; a short switch interval hands it the lock within 0.1 ms instead of 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL if notebooks else _SWITCH_INTERVAL[0])


def take(
    sandbox: warm.WarmSandbox, requests: list[CellRequest], files: dict[str, bytes], limits: Limits
) -> list[CellOutcome] | None:
    """The outcomes of the cells run ahead for this notebook, if they match; else None."""
    if not _AHEAD:
        return None
    outcomes = _AHEAD.pop().take(sandbox, requests, files, limits)
    if outcomes is None:
        counts.discarded += 1
    else:
        counts.taken += 1
    return outcomes


def start_after(student: str, notebook: str, sandbox: warm.WarmSandbox, limits: Limits, reset: str) -> None:
    """Start running the notebook planned after ``student``'s ``notebook`` (if any) ahead."""
    finish()
    keys = [(planned.student, planned.notebook) for planned in _PLAN]
    try:
        position = keys.index((student, notebook))
    except ValueError:
        return
    del _PLAN[: position + 1]
    if not _PLAN:
        return
    predicted = _PLAN[0].predict()
    if predicted is not None and sandbox.alive:
        requests, files = predicted
        _AHEAD.append(Ahead(sandbox, requests, files, limits, reset))


def finish() -> None:
    """Wait for a run ahead that nobody took (the sandbox is free again after this)."""
    while _AHEAD:
        _AHEAD.pop().wait()
