"""The sandbox a trainee's notebook runs in: a Jupyter kernel inside a fresh bubblewrap container.

Every kernel gets its own mount, network, PID, IPC, UTS and user namespaces: no network (only a private
loopback), a read-only view of the system and of the Python environment, a private tmpfs for /tmp and the
home directory (size-capped, gone when the kernel ends), nothing of the instance folder, the course
directory or other submissions, and a scrubbed environment. Resource limits come from rlimits set inside
the sandbox (CPU seconds, address space, open files, file size) and, where the host lets us, a cgroup per
kernel (process count and total memory), which is what bounds a fork bomb when the worker runs as root.

The kernel talks to the grader over ZeroMQ *IPC* sockets in a directory bound into the sandbox, so the
sandbox needs no network namespace shared with the worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Unicode

SANDBOX_HOME = "/home/trainee"
SANDBOX_WORKDIR = f"{SANDBOX_HOME}/work"
NOBODY = 65534
UNSAFE = "unsafe"
BUBBLEWRAP = "bwrap"


class SandboxUnavailable(RuntimeError):
    """Grading is refused: the sandbox cannot be built on this machine and unsafe mode is off."""


@dataclass(frozen=True)
class Limits:
    """What one submission's run may use."""

    cell_timeout: int = 60  # seconds of wall time per cell
    total_timeout: int = 900  # seconds of wall time for the whole notebook
    cpu_seconds: int = 600  # CPU time of the kernel process (RLIMIT_CPU)
    memory_bytes: int = 2 * 1024**3  # address space per process and, with cgroups, memory of the sandbox
    processes: int = 64  # processes and threads in the sandbox (cgroup pids.max, RLIMIT_NPROC)
    open_files: int = 256
    file_bytes: int = 64 * 1024**2  # largest file the kernel may write (RLIMIT_FSIZE)
    disk_bytes: int = 128 * 1024**2  # size of the writable tmpfs of /tmp and of the home directory
    output_bytes: int = 1024**2  # stored output per cell; the rest is dropped with a note

    def as_dict(self) -> dict[str, int]:
        """The limits as plain values (they travel through traitlets configuration)."""
        return {name: int(getattr(self, name)) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Limits:
        """Limits from ``as_dict`` output; unknown keys are ignored."""
        return cls(**{k: int(v) for k, v in values.items() if k in cls.__dataclass_fields__})


def bubblewrap_path() -> str | None:
    """The bwrap executable, or None when bubblewrap is not installed."""
    return shutil.which(BUBBLEWRAP)


def check_mode(mode: str) -> str:
    """``mode`` if grading can run with it; raises SandboxUnavailable with the admin's way out otherwise."""
    if mode == UNSAFE:
        return mode
    if mode != BUBBLEWRAP:
        raise SandboxUnavailable(f"unknown sandbox mode {mode!r}: use 'bwrap' or 'unsafe'")
    if bubblewrap_path() is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed, so trainee notebooks cannot run sandboxed and grading is refused. "
            "Install it (Debian: apt-get install bubblewrap). Only for trusted local use an administrator "
            "may set LMS_GRADER_SANDBOX=unsafe."
        )
    return mode


# --- cgroups -------------------------------------------------------------------------------------------


def _own_cgroup_dirs() -> dict[str, Path]:
    """Writable cgroup directories of this process for the ``pids`` and ``memory`` controllers."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one tree for every enabled controller
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            try:
                enabled = (base / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            for name in ("pids", "memory"):
                if name in enabled and os.access(base, os.W_OK):
                    found.setdefault(name, base)
            continue
        for name in controllers.split(","):
            if name in ("pids", "memory"):
                base = Path("/sys/fs/cgroup") / name / path.lstrip("/")
                if base.is_dir() and os.access(base, os.W_OK):
                    found[name] = base
    return found


@dataclass
class Cgroup:
    """A cgroup per sandbox (per controller directory), removed with every process in it at the end."""

    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, limits: Limits) -> Cgroup:
        """Cgroups limiting processes and memory, as far as this host allows (maybe none)."""
        group = cls()
        name = f"lms-sandbox-{uuid.uuid4().hex[:12]}"
        for controller, base in _own_cgroup_dirs().items():
            path = base / name
            try:
                path.mkdir()
                if controller == "pids":
                    (path / "pids.max").write_text(str(limits.processes))
                elif (path / "memory.limit_in_bytes").exists():  # v1
                    (path / "memory.limit_in_bytes").write_text(str(limits.memory_bytes + limits.disk_bytes))
                else:  # v2
                    (path / "memory.max").write_text(str(limits.memory_bytes + limits.disk_bytes))
                    (path / "memory.swap.max").write_text("0")
            except OSError:
                _remove_quietly(path)
                continue
            group.dirs.append(path)
        return group

    @property
    def limits_processes(self) -> bool:
        return any((path / "pids.max").exists() for path in self.dirs)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run after the shell that starts it has joined every cgroup of this sandbox."""
        if not self.dirs:
            return argv
        joins = " && ".join(f'echo $$ > "{path}/cgroup.procs"' for path in self.dirs)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "lms-sandbox", *argv]

    def destroy(self) -> None:
        """Kill whatever still runs in the sandbox's cgroups and remove them."""
        for path in self.dirs:
            for _ in range(50):
                try:
                    pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                threading.Event().wait(0.02)
            _remove_quietly(path)
        self.dirs = []


def remove_stale_cgroups() -> int:
    """Remove empty sandbox cgroups left by a worker that was killed; returns how many."""
    removed = 0
    for base in set(_own_cgroup_dirs().values()):
        for path in base.glob("lms-sandbox-*"):
            try:
                if not (path / "cgroup.procs").read_text().split():
                    path.rmdir()
                    removed += 1
            except OSError:
                continue
    return removed


def _remove_quietly(path: Path) -> None:
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # still busy: processes are being reaped
            threading.Event().wait(0.02)


# --- the bubblewrap command ----------------------------------------------------------------------------

# Inside the sandbox, before the kernel starts: rlimits that the kernel and its children inherit.
_BOOTSTRAP = """
import os, resource, sys
limits = {limits!r}
for name, value in limits.items():
    resource.setrlimit(getattr(resource, name), (value, value))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""

# The kernel's entry point: ipykernel with each cell's printed text capped where it is made. Unbounded,
# a print flood piles up in ipykernel's buffers and JSON messages faster than the grader reads them, and
# the kernel dies of MemoryError at the memory limit, costing every later cell. Past the cap, writes are
# dropped; the grader still stores at most ``output_bytes`` with its note (SandboxedExecute.output).
_KERNEL_LAUNCH = """
from ipykernel.iostream import OutStream
from ipykernel.kernelapp import IPKernelApp
CAP = CAP_BYTES
written = dict(cell=None, chars=0)
write = OutStream.write
def capped_write(stream, text):
    cell = stream.parent_header.get("msg_id")
    if cell != written["cell"]:
        written.update(cell=cell, chars=0)
    if written["chars"] > CAP and isinstance(text, str):
        return len(text)
    written["chars"] += len(text) if isinstance(text, str) else 0
    return write(stream, text)
OutStream.write = capped_write
IPKernelApp.launch_instance()
"""

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/fonts",
    "/etc/mime.types",
    "/etc/matplotlibrc",
)


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    return args


def python_roots() -> list[str]:
    """Directories the kernel's interpreter and packages live in, outside /usr (venv, pyenv, …)."""
    roots = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        real = os.path.realpath(prefix)
        if not real.startswith("/usr/") and real != "/usr":
            roots.append(real)
        if prefix != real and not prefix.startswith("/usr/"):
            roots.append(prefix)
    return sorted(set(roots))


def sandbox_environment() -> dict[str, str]:
    """The whole environment a kernel sees: nothing of the worker's."""
    bindir = os.path.dirname(sys.executable)
    return {
        "HOME": SANDBOX_HOME,
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "IPYTHONDIR": f"{SANDBOX_HOME}/.ipython",
        "JUPYTER_PLATFORM_DIRS": "1",
        # one BLAS thread: predictable CPU use, and the process cap is not spent on thread pools
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": "autograde",
    }


def rlimits_for(limits: Limits) -> dict[str, int]:
    """The rlimits (``resource`` names) a sandboxed process gets for ``limits``."""
    return {
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_AS": limits.memory_bytes,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_FSIZE": limits.file_bytes,
        "RLIMIT_NPROC": limits.processes,
        "RLIMIT_CORE": 0,
    }


def bubblewrap_command(
    kernel_argv: list[str],
    *,
    limits: Limits,
    ipc_dir: str | None = None,
    data_files: Iterable[tuple[str, str]] = (),
    extra_args: Iterable[str] = (),
    rlimits: bool = True,
) -> list[str]:
    """The bwrap command line that runs ``kernel_argv`` in a fresh sandbox.

    ``data_files`` are (host path, path relative to the working directory) pairs bound read-only into it;
    ``extra_args`` are further bwrap options applied after the standard layout. Without ``rlimits`` the
    program sets its own (the warm sandbox sets them per run).
    """
    bwrap = bubblewrap_path() or BUBBLEWRAP
    args = [
        bwrap,
        "--unshare-all",  # user, ipc, pid, net (loopback only), uts, cgroup
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--hostname",
        "sandbox",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # the private /tmp and home first: a Python installed under /tmp is bound on top, not hidden
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        "/tmp",
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        SANDBOX_HOME,
    ]
    for root in python_roots():
        args += ["--ro-bind", root, root]
    args += [
        "--dir",
        SANDBOX_WORKDIR,
    ]
    if ipc_dir is not None:
        args += ["--bind", ipc_dir, ipc_dir]
    for host_path, relative in data_files:
        args += ["--ro-bind", host_path, f"{SANDBOX_WORKDIR}/{relative}"]
    args += [*extra_args, "--chdir", SANDBOX_WORKDIR, "--clearenv"]
    for name, value in sandbox_environment().items():
        args += ["--setenv", name, value]
    if not rlimits:
        return [*args, "--", *kernel_argv]
    python, *rest = kernel_argv
    return [*args, "--", python, "-c", _BOOTSTRAP.format(limits=rlimits_for(limits)), *rest]


# --- the kernel manager --------------------------------------------------------------------------------


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the Python kernel inside a bubblewrap sandbox (or, in unsafe mode, as a plain process with
    the same rlimits and a scrubbed environment) and kills it when the total time is up."""

    sandbox_mode = Unicode(BUBBLEWRAP).tag(config=True)
    sandbox_limits = Dict().tag(config=True)
    # The notebook's directory on the host: its non-notebook files are bound read-only into the sandbox.
    data_dir = Unicode("").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = Limits.from_dict(self.sandbox_limits)
        self.ipc_dir = Path(f"/tmp/lms-kernel-{uuid.uuid4().hex}")
        self.ipc_dir.mkdir(mode=0o700)
        # ZeroMQ over unix sockets in a directory bound into the sandbox: no shared network needed.
        self.transport = "ipc"
        self.ip = str(self.ipc_dir / "kernel")
        self.connection_file = str(self.ipc_dir / "connection.json")
        self.cgroup = Cgroup()
        self.watchdog: threading.Timer | None = None
        self.total_time_exceeded = False
        self._log_file: BinaryIO | None = None

    @property
    def kernel_spec(self) -> KernelSpec:
        # Interrupts travel as messages: signals from outside cannot cross into the sandbox's PID namespace.
        return KernelSpec(
            argv=[sys.executable, "-c", self.kernel_launch_code(), "-f", "{connection_file}"],
            display_name="Python 3 (sandbox)",
            language="python",
            interrupt_mode="message",
        )

    def kernel_launch_code(self) -> str:
        """The kernel's ``python -c`` program: ipykernel with each cell's printed text capped at twice
        what the grader keeps (its count of a message is larger than the text, so its note still shows)."""
        return _KERNEL_LAUNCH.replace("CAP_BYTES", str(2 * self.limits.output_bytes))

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv = super().format_kernel_cmd(extra_arguments)
        if self.sandbox_mode == UNSAFE:
            python, *rest = argv
            rlimits = rlimits_for(self.limits)
            del rlimits["RLIMIT_NPROC"]  # per user: it would count every process of the grader's user
            return [python, "-c", _BOOTSTRAP.format(limits=rlimits), *rest]
        os.chmod(self.ipc_dir, 0o777)  # the sandbox's user must reach its sockets
        self.cgroup = Cgroup.create(self.limits)
        return self.cgroup.wrap(
            bubblewrap_command(argv, limits=self.limits, ipc_dir=str(self.ipc_dir), data_files=self._data())
        )

    def _data(self) -> list[tuple[str, str]]:
        if not self.data_dir:
            return []
        base = Path(self.data_dir)
        files = []
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix != ".ipynb" and not path.name.startswith("."):
                files.append((str(path), str(path.relative_to(base))))
        return files

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        # Never the worker's terminal; the kernel's own chatter goes to a log in its socket directory.
        kw["stdin"] = subprocess.DEVNULL
        kw["stdout"] = subprocess.DEVNULL
        self._log_file = open(self.ipc_dir / "kernel.log", "wb")  # noqa: SIM115  (closed in release())
        kw["stderr"] = self._log_file
        if self.sandbox_mode == UNSAFE:
            kw["env"] = {**sandbox_environment(), "HOME": str(self.ipc_dir), "IPYTHONDIR": str(self.ipc_dir)}
        else:
            kw.pop("cwd", None)  # the sandbox chooses its own working directory
        await super()._async_launch_kernel(kernel_cmd, **kw)
        self.watchdog = threading.Timer(self.limits.total_timeout, self._time_is_up)
        self.watchdog.daemon = True
        self.watchdog.start()

    def _time_is_up(self) -> None:
        self.total_time_exceeded = True
        self._kill_everything()

    def _kill_everything(self) -> None:
        provisioner = self.provisioner
        process = getattr(provisioner, "process", None)
        pid = getattr(provisioner, "pid", None)
        pgid = getattr(provisioner, "pgid", None)
        if process is None or process.poll() is not None:
            pid = pgid = None  # already reaped: its id may belong to someone else now
        try:
            if pgid:
                os.killpg(pgid, signal.SIGKILL)
            elif pid:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.cgroup.destroy()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        # nbclient shuts down only a live kernel; a kernel that exited or was killed is cleaned up here
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            if not restart:
                self.release()

    # the base class binds its own function by value
    cleanup_resources = _async_cleanup_resources

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
        try:
            await super()._async_shutdown_kernel(now=True, restart=restart)
        finally:
            self.release()

    def release(self) -> None:
        """Stop the watchdog, kill anything left in the sandbox and remove its sockets."""
        if self.watchdog is not None:
            self.watchdog.cancel()
        self._kill_everything()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def __del__(self) -> None:  # a kernel that never started still owns its socket directory
        shutil.rmtree(getattr(self, "ipc_dir", "/nonexistent"), ignore_errors=True)
