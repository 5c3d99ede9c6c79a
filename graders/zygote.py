"""The warm sandbox: runs *inside* a bubblewrap sandbox and forks one fresh, further-isolated child per
submission.

It is started as a script (``python -I zygote.py CONFIG``) with nothing of the LMS importable: only the
standard library, IPython and the course's heavy libraries, which it imports once (the expensive part of
a kernel start). It never runs trainee code itself. For each submission it forks a child that

* enters new user, mount, PID, IPC, UTS and network namespaces (so the child's processes die with it and
  cannot see or signal the zygote or an earlier child),
* mounts fresh size-capped tmpfs over every writable place of the sandbox (``/tmp``, the home directory,
  ``/dev/shm``; the rest of the sandbox is read-only), so nothing of one run is there for the next,
* sets the run's rlimits, drops every capability and sets no-new-privileges,
* and then runs the notebook's cells one request at a time in an IPython shell whose outputs are recorded
  as Jupyter would record them (streams, results, displays, errors).

The grader talks to the zygote over stdin/stdout with length-prefixed JSON frames; the zygote relays to
the current child over a socket pair. Timeouts are enforced by the grader, outside the sandbox.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import gc
import importlib
import json
import os
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import threading
from typing import Any, NoReturn

HEADER = struct.Struct("!I")
MAX_REQUEST = 512 * 1024**2  # requests come from the grader (data files included)
TEARDOWN_SECONDS = 2

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


# --- frames --------------------------------------------------------------------------------------------


def read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``; EOFError when it closes first."""
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = MAX_REQUEST) -> Any:
    """One JSON frame from ``fd``."""
    (size,) = HEADER.unpack(read_exactly(fd, HEADER.size))
    if size > limit:
        raise ValueError(f"frame of {size} bytes exceeds {limit}")
    return json.loads(read_exactly(fd, size))


def write_frame(fd: int, message: Any) -> None:
    """One JSON frame to ``fd``."""
    payload = json.dumps(message, default=repr).encode()
    data = HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- the child's isolation -----------------------------------------------------------------------------


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount_tmpfs(path: str, size: int) -> None:
    _check(
        _libc.mount(
            b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=0755".encode()
        ),
        f"mount tmpfs on {path}",
    )


def _drop_capabilities() -> None:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    header = Header(LINUX_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def enter_new_namespaces() -> None:
    """Unshare every namespace but cgroup's, keeping this process's user and group ids."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET
    _check(_libc.unshare(flags), "unshare")
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"{gid} {gid} 1")


def _reap_until(child: int) -> NoReturn:
    # Wait for ``child`` (reaping any orphan on the way) and exit with its status.
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _bring_loopback_up() -> None:
    # a new network namespace starts with its loopback down; a kernel's sandbox has it up
    import fcntl

    request = struct.pack("16sH14x", b"lo", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        flags = struct.unpack("16sH14x", fcntl.ioctl(probe.fileno(), 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(probe.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP


def isolate_mounts(config: dict[str, Any]) -> None:
    """In the namespace's init: fresh tmpfs over every writable place of the sandbox."""
    if not config["isolate"]:
        return
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    disk = int(config["disk_bytes"])
    for path in config["writable"]:
        _mount_tmpfs(path, disk)
    for stash, target in config["rebind"]:  # a Python installed under one of them, bound back read-only
        os.makedirs(target, exist_ok=True)
        _check(_libc.mount(stash.encode(), target.encode(), None, MS_BIND | MS_REC, None), f"bind {target}")
    if config["rebind"]:  # and the second copy out of sight
        _check(
            _libc.mount(
                b"tmpfs", config["stash_dir"].encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k"
            ),
            "cover the stash",
        )
    with contextlib.suppress(OSError):
        socket.sethostname("sandbox")


def isolate_run(config: dict[str, Any], files: dict[str, str]) -> None:
    """In the run's process: the data files, the rlimits, no capabilities. Unsafe mode (trusted code, no
    sandbox) only gets a fresh directory."""
    if config["isolate"]:
        workdir = config["workdir"]
    else:
        import tempfile

        workdir = tempfile.mkdtemp(prefix="lms-run-")
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    for relative, encoded in files.items():
        target = os.path.normpath(os.path.join(workdir, relative))
        if not target.startswith(workdir + os.sep):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(base64.b64decode(encoded))
        os.chmod(target, 0o444)
    for name, value in config["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    if config["isolate"]:
        _drop_capabilities()


# --- running cells -------------------------------------------------------------------------------------


class Recorder:
    """The current cell's outputs in nbformat's shape, with stored output capped per cell."""

    def __init__(self, limit: int, note: str) -> None:
        self.limit = limit
        self.note = note
        self.outputs: list[dict[str, Any]] = []
        self.size = 0
        self.truncated = False
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.outputs, self.size, self.truncated = [], 0, False

    def _room(self, size: int) -> bool:
        self.size += size
        if self.size <= self.limit:
            return True
        if not self.truncated:
            self.truncated = True
            self.outputs.append({"output_type": "stream", "name": "stderr", "text": self.note})
        return False

    def stream(self, name: str, text: str) -> None:
        with self.lock:
            if not text or not self._room(len(text)):
                return
            last = self.outputs[-1] if self.outputs else None
            if last is not None and last["output_type"] == "stream" and last["name"] == name:
                last["text"] += text
            else:
                self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def add(self, output: dict[str, Any]) -> None:
        with self.lock:
            if self._room(len(json.dumps(output, default=repr))):
                self.outputs.append(output)

    def clear(self) -> None:
        with self.lock:
            self.outputs = []


class Stream:
    """``sys.stdout`` / ``sys.stderr`` of the run: text goes to the recorder."""

    def __init__(self, recorder: Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name
        self.encoding = "utf-8"
        self.errors = "strict"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.recorder.stream(self.name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1 if self.name == "stdout" else 2

    @property
    def closed(self) -> bool:
        return False


def _drain_descriptor(fd: int, recorder: Recorder, name: str) -> None:
    # Output written to the file descriptors themselves (subprocesses, C libraries) is recorded too.
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        recorder.stream(name, chunk.decode("utf-8", "replace"))


def build_shell(recorder: Recorder) -> Any:
    """An IPython shell whose results, displays and tracebacks go to ``recorder`` (as ipykernel's do)."""
    from IPython.core.display_trap import DisplayTrap
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class RecordingDisplayHook(DisplayHook):
        def start_displayhook(self) -> None:
            self.msg: dict[str, Any] | None = {
                "output_type": "execute_result",
                "data": {},
                "metadata": {},
                "execution_count": self.prompt_count,
            }

        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict: dict, md_dict: dict | None = None) -> None:
            if self.msg is not None:
                self.msg["data"] = format_dict
                self.msg["metadata"] = md_dict or {}

        def finish_displayhook(self) -> None:
            if self.msg is not None and self.msg["data"]:
                recorder.add(self.msg)
            self.msg = None

    class RecordingPublisher(DisplayPublisher):
        def publish(self, data: dict, metadata: dict | None = None, *args: Any, **kwargs: Any) -> None:
            recorder.add({"output_type": "display_data", "data": data, "metadata": metadata or {}})

        def clear_output(self, wait: bool = False) -> None:
            recorder.clear()

    class RecordingShell(InteractiveShell):
        def init_displayhook(self) -> None:
            self.displayhook = RecordingDisplayHook(shell=self, cache_size=self.cache_size)
            self.configurables.append(self.displayhook)  # type: ignore[arg-type]
            self.display_trap = DisplayTrap(hook=self.displayhook)

        def init_display_pub(self) -> None:
            self.display_pub = RecordingPublisher(shell=self, parent=self)
            self.configurables.append(self.display_pub)  # type: ignore[arg-type]

        def _showtraceback(self, etype: Any, evalue: Any, stb: Any) -> None:
            recorder.add(
                {
                    "output_type": "error",
                    "ename": str(etype.__name__),
                    "evalue": str(evalue),
                    "traceback": stb,
                }
            )

    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.autocall = 0
    config.InteractiveShell.xmode = "Context"
    return RecordingShell.instance(config=config)


# Mistakes trainees make with each library, by the module that must already be loaded: the traceback of
# one passes through the library's own validation files, and formatting it parses those files (stack_data
# and executing cache them per file). Parsed here once, every run inherits them: a run's first
# ``fit`` with mismatched rows costs ~0.1 s less. Only libraries the assignment preloads are touched.
# (pandas is left out: its frame and index files cost 37 MiB per sandbox and 0.5 s to parse.)
_LIBRARY_MISTAKES = {
    "numpy": ("import numpy\nnumpy.reshape([1, 2, 3], (2, 2))",),
    "sklearn.linear_model": (
        "from sklearn.linear_model import LinearRegression as L\nL().fit([[1.0], [2.0]], [1.0])",
        "from sklearn.linear_model import LinearRegression as L\nL(fit_intercept='x').fit([[1.0]], [1.0])",
        "from sklearn.linear_model import LinearRegression as L\nL().predict([[1.0]])",
    ),
    "sklearn.model_selection": (
        "from sklearn.model_selection import train_test_split\ntrain_test_split([1, 2], test_size=2.5)",
    ),
}


def warm_tracebacks(shell: Any) -> None:
    """Format tracebacks of the grader's own making, so that the first error of every run does not pay
    for the traceback machinery's lazy imports and caches (stack_data, executing, inspect's map of
    modules), nor for parsing the preloaded libraries' files its frames pass through; a fork inherits
    all of it already built."""
    mistakes = ["import json\n\n\ndef probe():\n    return json.loads('{')\n\n\nprobe()\n"]
    for module, sources in _LIBRARY_MISTAKES.items():
        if module in sys.modules:
            mistakes.extend(sources)
    for source in mistakes:
        try:
            exec(compile(source, shell.compile.cache(source), "exec"), {})  # noqa: S102  (constant code of ours)
        except Exception:  # noqa: BLE001  (each is meant to fail)
            shell.InteractiveTB.structured_traceback(*sys.exc_info())


def serve_run(sock: socket.socket, config: dict[str, Any], shell: Any) -> None:
    """The run: wait for its submission's data files (a run is forked ahead of demand), take its limits,
    then answer ``run`` requests (a test cell's with the grader's shell reset first) until the socket
    closes."""
    try:
        first = read_frame(sock.fileno())
    except (EOFError, OSError, ValueError):
        os._exit(0)
    isolate_run(config, first.get("files") or {})
    recorder: Recorder = shell.__recorder__
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    os.dup2(stdout_w, 1)
    os.dup2(stderr_w, 2)
    os.close(stdout_w)
    os.close(stderr_w)
    for fd, name in ((stdout_r, "stdout"), (stderr_r, "stderr")):
        threading.Thread(target=_drain_descriptor, args=(fd, recorder, name), daemon=True).start()
    streams = Stream(recorder, "stdout"), Stream(recorder, "stderr")
    hooks = shell.displayhook, shell.display_pub
    sys.stdout, sys.stderr = streams
    sys.stdin = open(os.devnull)  # noqa: SIM115
    # what a notebook sees in a Jupyter kernel (some read sys.argv), not the zygote's configuration
    sys.argv = ["ipykernel_launcher.py", "-f", os.path.join(config["workdir"], "..", ".kernel.json")]
    if "numpy" in sys.modules:  # fresh randomness per run, as a new kernel would have
        sys.modules["numpy"].random.seed()
    running = [False]

    def interrupt(_signum: int, _frame: Any) -> None:
        # only a running cell is interrupted; between cells the request in flight must not be torn
        if running[0]:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    fd = sock.fileno()
    write_frame(fd, {"ready": True})
    while True:
        try:
            request = read_frame(fd)
        except (EOFError, OSError, ValueError):
            os._exit(0)
        recorder.reset()
        if request.get("reset"):  # the grader's shell reset before a test cell
            sys.stdout, sys.stderr = streams
            shell.displayhook, shell.display_pub = hooks
            namespace: dict[str, Any] = {}
            try:
                exec(request["reset"], namespace)  # noqa: S102  (the grader's own code)
                answer = namespace.get("ok")
            except BaseException as error:  # noqa: BLE001
                answer = f"{type(error).__name__}"
            if answer != request.get("token"):
                write_frame(fd, {"tampered": True})
                continue
            recorder.reset()
        running[0] = True
        try:
            result = shell.run_cell(request["code"], store_history=bool(request.get("store_history", True)))
        finally:
            running[0] = False
        failure = result.error_before_exec or result.error_in_exec
        reply = {
            "outputs": recorder.outputs,
            "execution_count": shell.execution_count - 1 if request.get("store_history", True) else None,
            "status": "error" if failure is not None else "ok",
        }
        if failure is not None:
            reply["ename"] = type(failure).__name__
        write_frame(fd, reply)


# --- the zygote ----------------------------------------------------------------------------------------


def start_run(config: dict[str, Any], shell: Any) -> tuple[int, socket.socket]:
    """Fork the run: an outer process that enters new namespaces; its child, PID 1 there, that mounts
    fresh writable places and only reaps; and that one's child, which runs the cells. Interrupts are
    forwarded down the chain."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid:
        theirs.close()
        return pid, ours
    try:
        ours.close()
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        # nothing of the zygote's: not its channel to the grader, not its selector
        keep = theirs.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 65536)
        if config["isolate"]:
            enter_new_namespaces()
        # The namespace's init (PID 1) only reaps; the run itself is its child, so that a run can kill
        # itself as a kernel can (PID 1 is immune to its own SIGKILL).
        init = os.fork()
        if init == 0:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
            if config["isolate"]:
                _bring_loopback_up()
            isolate_mounts(config)
            if config["isolate"]:
                _drop_capabilities()
            runner = os.fork()
            if runner == 0:
                _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
                serve_run(theirs, config, shell)
                os._exit(0)
            theirs.close()
            signal.signal(signal.SIGINT, lambda *_: os.kill(runner, signal.SIGINT))
            _reap_until(runner)
        theirs.close()
        signal.signal(signal.SIGINT, lambda *_: os.kill(init, signal.SIGINT))
        # asked to stop: kill the namespace's init; the kernel kills the rest of the namespace and init
        # is reaped only once all of it is gone, so when this process exits the run has left no trace
        signal.signal(signal.SIGTERM, lambda *_: os.kill(init, signal.SIGKILL))
        _reap_until(init)
    except BaseException:  # noqa: BLE001  (a child never returns into the zygote's loop)
        os._exit(70)


def main() -> None:
    config = json.loads(sys.argv[1])
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    control_in, control_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1):
        os.dup2(null, target)
    loaded, failed = [], []
    for name in config["preload"]:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as error:  # noqa: BLE001  (a missing library only costs speed)
            failed.append(f"{name}: {type(error).__name__}: {error}")
    if "numpy" in sys.modules:  # its first seeding imports and builds what every run's reseeding needs
        sys.modules["numpy"].random.seed()
    if "sklearn" in sys.modules:
        # An estimator shown as a cell's result is drawn as an HTML diagram (styles, inputs, scripts)
        # that the feedback page strips to unreadable text, and drawing it costs ~15 ms each time; its
        # text form is what trainees can read.
        sys.modules["sklearn"].set_config(display="text")
    recorder = Recorder(int(config["output_bytes"]), config["output_note"])
    shell = build_shell(recorder)
    shell.__recorder__ = recorder
    warm_tracebacks(shell)
    # Everything so far is shared with every run, copy-on-write: keep the collector's hands off it, so
    # that a run does not copy the pages of objects it never uses.
    gc.collect()
    gc.freeze()
    write_frame(control_out, {"ready": True, "preloaded": loaded, "failed": failed})
    child: tuple[int, socket.socket] | None = None
    # The run after the current one, forked while the current one works, so that "start" costs nothing.
    spare: tuple[int, socket.socket] | None = None
    selector = selectors.DefaultSelector()
    selector.register(control_in, selectors.EVENT_READ, "control")
    while True:
        for key, _ in selector.select():
            if key.data == "control":
                try:
                    request = read_frame(control_in)
                except (EOFError, OSError):
                    os._exit(0)
                op = request["op"]
                if op == "start":
                    _stop(child, selector)
                    child, spare = spare or start_run(config, shell), None
                    selector.register(child[1], selectors.EVENT_READ, "child")
                elif op == "interrupt" and child is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child[0], signal.SIGINT)
                elif op == "stop":
                    _stop(child, selector)
                    child = None
                    write_frame(control_out, {"stopped": True, "spares": int(spare is not None)})
                elif child is not None:  # files, run: relayed to the run
                    with contextlib.suppress(OSError):  # it died: its socket reports that below
                        write_frame(child[1].fileno(), request)
            else:
                assert child is not None
                try:
                    size_bytes = child[1].recv(HEADER.size, socket.MSG_WAITALL)
                    if len(size_bytes) < HEADER.size:
                        raise EOFError
                    (size,) = HEADER.unpack(size_bytes)
                    if size > int(config["reply_limit"]):
                        raise ValueError
                    payload = read_exactly(child[1].fileno(), size)
                    os.write(control_out, size_bytes)
                    _write_all(control_out, payload)
                    if spare is None:  # forked once the run has answered, not in its way
                        with contextlib.suppress(OSError):  # no room for it now: "start" forks one
                            spare = start_run(config, shell)
                except (EOFError, OSError, ValueError):
                    status = _reap(child)
                    selector.unregister(child[1])
                    child[1].close()
                    child = None
                    write_frame(
                        control_out, {"dead": True, "status": status, "spares": int(spare is not None)}
                    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _reap(child: tuple[int, socket.socket]) -> int:
    # The outer process tears the run's namespace down and exits when it is gone (SIGKILL if it lags).
    with contextlib.suppress(OSError):
        exited = os.pidfd_open(child[0])
        try:
            os.kill(child[0], signal.SIGTERM)
            if not select.select([exited], [], [], TEARDOWN_SECONDS)[0]:
                os.kill(child[0], signal.SIGKILL)
        finally:
            os.close(exited)
    with contextlib.suppress(ProcessLookupError):
        os.kill(child[0], signal.SIGKILL)
    try:
        _, status = os.waitpid(child[0], 0)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)


def _stop(child: tuple[int, socket.socket] | None, selector: selectors.BaseSelector) -> None:
    if child is not None:
        _reap(child)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(child[1])
        child[1].close()


if __name__ == "__main__":
    main()
