"""The grader's side of the warm sandbox (see ``graders/zygote.py`` for the side inside it).

A grading process keeps one :class:`WarmSandbox`: a bubblewrap sandbox whose interpreter has imported
IPython and the course's heavy libraries once. Each submission is a *run*: a fresh process forked in
there, in new namespaces with fresh writable mounts, that executes the notebook's cells one request at a
time and is killed at the end. The sandbox's cgroup bounds the zygote and its one run (processes and
memory). Every time limit is kept here, outside the sandbox; what the run sends back is untrusted and
checked before it becomes a notebook output.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import importlib.util
import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from graders.sandbox import (
    SANDBOX_HOME,
    SANDBOX_WORKDIR,
    UNSAFE,
    Cgroup,
    Limits,
    bubblewrap_command,
    python_roots,
    rlimits_for,
    sandbox_environment,
)
from graders.zygote import HEADER

ZYGOTE_SOURCE = Path(__file__).with_name("zygote.py")
ZYGOTE_IN_SANDBOX = "/opt/lms/zygote.py"
PYTHON_STASH = "/opt/lms/python"
# Writable places of the warm sandbox; each run mounts fresh ones over them.
WRITABLE = ("/tmp", SANDBOX_HOME, "/dev/shm")
OUTPUT_LIMIT_NOTE = "\n[output truncated: this cell printed more than the limit]\n"
START_SECONDS = 120  # a loaded machine may need a while to import the heavy libraries
RUN_START_SECONDS = 30
INTERRUPT_GRACE_SECONDS = 5
# On top of the run's own process limit: bwrap, its namespace's init, the zygote, and the run's outer
# process and namespace init.
ZYGOTE_PROCESSES = 5
# A run waiting for its submission (outer process, namespace init, runner); the zygote keeps one such
# spare beside the current run, on top of the run's own limit.
PREPARED_RUN_PROCESSES = 3
ALWAYS_PRELOADED = ("IPython.core.interactiveshell",)


class RunStopped(RuntimeError):
    """The run is gone: it exited, crashed, hit a limit, or was killed for the total time limit."""

    def __init__(self, message: str, *, time_limit: bool = False) -> None:
        super().__init__(message)
        self.time_limit = time_limit


class CellTimedOut(RuntimeError):
    """A cell ran past its timeout and was interrupted; ``outputs`` is what it had produced."""

    def __init__(self, outputs: list[dict[str, Any]]) -> None:
        super().__init__("cell timed out")
        self.outputs = outputs


class SandboxBroken(RuntimeError):
    """The warm sandbox itself failed (not the trainee's run); it is restarted for the next job."""


def preload_modules(notebooks: list[dict[str, Any]]) -> tuple[str, ...]:
    """Modules the notebooks' code cells import that are installed here (what the zygote imports)."""
    found: dict[str, None] = {}
    for notebook in notebooks:
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        found[alias.name] = None
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found[node.module] = None
    installed = []
    for name in found:
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(name.split(".")[0]) is not None:
                installed.append(name)
    return tuple(sorted(installed))


@dataclass(frozen=True)
class WarmKey:
    """What a warm sandbox is made for: reused only for the same limits, libraries and mode."""

    limits: Limits
    preload: tuple[str, ...]
    mode: str


class WarmSandbox:
    """A running zygote in its sandbox, and at most one run in it."""

    def __init__(self, key: WarmKey) -> None:
        self.key = key
        self.limits = key.limits
        self.cgroup = Cgroup()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(f"/tmp/lms-warm-{os.getpid()}-{id(self):x}.log")
        self._log: IO[bytes] | None = None
        self._selector = selectors.DefaultSelector()
        self.in_run = False
        self.run_deadline = 0.0
        self.preloaded: list[str] = []
        self.failed: list[str] = []
        self.idle_processes = 0
        self.prepared = False  # the zygote has forked the next run: "start" was sent
        self.spares = 0  # runs the zygote has forked beyond that one
        self.ready = False

    # --- the zygote ---

    def start(self) -> None:
        """Start the zygote and wait until it has imported its libraries."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the zygote without waiting for it (its imports overlap whatever the grader does next)."""
        limits = self.limits
        rlimits = rlimits_for(limits)
        if self.key.mode == UNSAFE:
            del rlimits["RLIMIT_NPROC"]  # per user: it would count every process of the grader's user
        # A Python installed under a writable place (a checkout in /tmp) is bound a second time outside
        # it, so that a run can bind it back after mounting its fresh tmpfs there.
        hidden_roots = [
            root
            for root in python_roots()
            if any(root == path or root.startswith(path + "/") for path in WRITABLE)
        ]
        stashes = [(root, f"{PYTHON_STASH}/{index}") for index, root in enumerate(hidden_roots)]
        config = {
            "rebind": [[stash, root] for root, stash in stashes],
            "stash_dir": PYTHON_STASH,
            "preload": [*ALWAYS_PRELOADED, *self.key.preload],
            "isolate": self.key.mode != UNSAFE,
            "writable": list(WRITABLE),
            "workdir": SANDBOX_WORKDIR,
            "disk_bytes": limits.disk_bytes,
            "rlimits": rlimits,
            "output_bytes": limits.output_bytes,
            "output_note": OUTPUT_LIMIT_NOTE,
            "reply_limit": self.reply_limit,
        }
        argv = [sys.executable, "-I", ZYGOTE_IN_SANDBOX, json.dumps(config)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in close())
        if self.key.mode == UNSAFE:
            argv[2] = str(ZYGOTE_SOURCE)
            command = argv
            env: dict[str, str] | None = {
                **sandbox_environment(),
                "HOME": "/tmp",
                "IPYTHONDIR": "/tmp/.ipython",
            }
        else:
            # The whole cgroup holds the zygote, one run and its spare: the run's limits plus their share.
            self.cgroup = Cgroup.create(
                Limits(
                    processes=limits.processes + ZYGOTE_PROCESSES + PREPARED_RUN_PROCESSES,
                    memory_bytes=limits.memory_bytes + 512 * 1024**2,
                    disk_bytes=limits.disk_bytes * len(WRITABLE),
                )
            )
            command = self.cgroup.wrap(
                bubblewrap_command(
                    argv,
                    limits=limits,
                    extra_args=[
                        *(arg for root, stash in stashes for arg in ("--ro-bind", root, stash)),
                        "--ro-bind",
                        str(ZYGOTE_SOURCE),
                        ZYGOTE_IN_SANDBOX,
                        "--tmpfs",
                        "/dev/shm",
                        "--remount-ro",
                        "/dev",
                        "--remount-ro",
                        "/",
                    ],
                    rlimits=False,
                )
            )
            env = None
        self.process = subprocess.Popen(  # noqa: S603
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, close_fds=True
        )
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def wait_ready(self) -> None:
        """Wait until the launched zygote has imported its libraries (once)."""
        if self.ready:
            return
        try:
            ready = self._read(time.monotonic() + START_SECONDS)
        except (RunStopped, TimeoutError) as error:
            self.close()
            raise SandboxBroken(f"the warm sandbox did not start: {error}; {self._log_tail()}") from error
        self.preloaded, self.failed = ready.get("preloaded", []), ready.get("failed", [])
        self.idle_processes = len(self.processes())
        self.ready = True

    def processes(self) -> list[int]:
        """Host ids of every process in the sandbox's cgroup (the zygote's and its run's)."""
        for path in self.cgroup.dirs:
            with contextlib.suppress(OSError):
                return [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
        return []

    def leftover_processes(self) -> int:
        """Processes in the sandbox beyond the idle zygote's own and the runs prepared ahead of demand:
        what a finished run left behind."""
        prepared = PREPARED_RUN_PROCESSES * (int(self.prepared) + self.spares)
        return max(0, len(self.processes()) - self.idle_processes - prepared)

    @property
    def reply_limit(self) -> int:
        """The largest reply a run may send: its capped outputs and the frame's own weight."""
        return 4 * self.limits.output_bytes + 256 * 1024

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Kill the zygote and everything in its sandbox."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self.process = None
        self.prepared, self.spares = False, 0
        self.cgroup.destroy()
        if self._log is not None:
            self._log.close()
            self._log = None
        with contextlib.suppress(OSError):
            self.log_path.unlink()
        self.in_run = False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    # --- frames ---

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        payload = json.dumps(message).encode()
        try:
            self.process.stdin.write(HEADER.pack(len(payload)) + payload)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise SandboxBroken("the warm sandbox stopped") from error

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks: list[bytes] = []
        while size:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise TimeoutError
            chunk = os.read(fd, min(size, 1 << 20))
            if not chunk:
                raise SandboxBroken(f"the warm sandbox stopped; {self._log_tail()}")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _read(self, deadline: float) -> dict[str, Any]:
        (size,) = HEADER.unpack(self._read_exactly(HEADER.size, deadline))
        if size > self.reply_limit:
            raise SandboxBroken(f"a reply of {size} bytes exceeds {self.reply_limit}")
        # A frame that has started arrives whole (the zygote forwards it at once), unless the zygote broke.
        message = json.loads(self._read_exactly(size, time.monotonic() + 30))
        if not isinstance(message, dict):
            raise SandboxBroken("the warm sandbox sent something that is not a message")
        if message.get("dead"):
            self.in_run = False
            self.spares = 1 if message.get("spares") else 0
            raise RunStopped("the run stopped (it exited, crashed or hit a limit)")
        return message

    # --- a run ---

    def begin(self, files: dict[str, bytes], total_timeout: float) -> None:
        """Start a fresh run (usually forked ahead of demand by the last ``end``) with ``files`` in its
        working directory."""
        import base64

        encoded = {name: base64.b64encode(data).decode() for name, data in files.items()}
        for attempt in (1, 2):
            if not self.prepared:
                self._send({"op": "start"})  # takes the zygote's spare run, if it has one
                self.spares = 0
            self.prepared = False
            self._send({"op": "files", "files": encoded})
            self.in_run = True
            self.run_deadline = time.monotonic() + total_timeout
            try:
                self._read(time.monotonic() + RUN_START_SECONDS)
                return
            except TimeoutError as error:
                raise SandboxBroken("a run did not start in time") from error
            except RunStopped:
                if attempt == 2:  # not the trainee's doing: nothing of theirs has run yet
                    raise SandboxBroken("runs die before they start") from None

    def run(
        self, code: str, *, store_history: bool, timeout: float | None, reset: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """Execute one cell; raises CellTimedOut (interrupted, run goes on) or RunStopped. With ``reset``
        (the grader's code and the token its ``ok`` must equal) that code runs first, outside the shell;
        when it does not answer with the token the cell is not run and the reply says ``tampered``."""
        request: dict[str, Any] = {"op": "run", "code": code, "store_history": store_history}
        if reset is not None:
            request["reset"], request["token"] = reset
        self._send(request)
        return self._wait(timeout)

    def _wait(self, timeout: float | None) -> dict[str, Any]:
        cell_deadline = time.monotonic() + timeout if timeout else float("inf")
        deadline = min(cell_deadline, self.run_deadline)
        try:
            return self._read(deadline)
        except TimeoutError:
            pass
        if deadline >= self.run_deadline:
            self.end()
            raise RunStopped("the total time limit for the notebook was reached", time_limit=True) from None
        self._send({"op": "interrupt"})
        try:
            reply = self._read(min(time.monotonic() + INTERRUPT_GRACE_SECONDS, self.run_deadline))
        except TimeoutError:
            self.end()
            raise RunStopped("the cell did not stop when interrupted") from None
        raise CellTimedOut(list(reply.get("outputs") or []))

    def end(self) -> None:
        """Kill the run and everything it started."""
        if not self.in_run:
            return
        self.in_run = False
        self._send({"op": "stop"})
        deadline = time.monotonic() + 30
        while True:  # replies of the run still in flight come first
            try:
                message = self._read(deadline)
            except RunStopped:
                continue
            except TimeoutError as error:
                raise SandboxBroken("the warm sandbox did not stop a run") from error
            if message.get("stopped"):
                self.spares = 1 if message.get("spares") else 0
                break
        # the zygote answers once the run's namespace is gone (its init is reaped only then); a process
        # that escaped it would show here, and the next run waits for it
        settle = time.monotonic() + 5
        while self.leftover_processes() and time.monotonic() < settle:
            time.sleep(0.002)
        # the next run (the zygote's spare, else forked now) waits while the grader records this one
        self._send({"op": "start"})
        self.prepared, self.spares = True, 0


_CURRENT: list[WarmSandbox] = []


def prestart(key: WarmKey) -> None:
    """Launch this process's warm sandbox for ``key`` now, without waiting for it to be ready."""
    if _CURRENT and (_CURRENT[0].key != key or not _CURRENT[0].alive):
        _CURRENT.pop().close()
    if not _CURRENT:
        sandbox = WarmSandbox(key)
        _CURRENT.append(sandbox)
        try:
            sandbox.launch()
        except Exception:
            _CURRENT.remove(sandbox)
            sandbox.close()
            raise


def sandbox_for(key: WarmKey) -> WarmSandbox:
    """This process's warm sandbox for ``key``, started (or restarted) and ready."""
    prestart(key)
    sandbox = _CURRENT[0]
    try:
        sandbox.wait_ready()
    except SandboxBroken:
        discard(sandbox)
        raise
    return sandbox


def current() -> WarmSandbox | None:
    """This process's warm sandbox, if one is running."""
    return _CURRENT[0] if _CURRENT else None


def discard(sandbox: WarmSandbox) -> None:
    """Close ``sandbox`` (after it broke) so that the next job starts a new one."""
    if sandbox in _CURRENT:
        _CURRENT.remove(sandbox)
    sandbox.close()


def close_all() -> None:
    """Stop this process's warm sandbox (at exit)."""
    while _CURRENT:
        _CURRENT.pop().close()


atexit.register(close_all)
