"""Background jobs: one Celery app for the LMS, configured from the Flask config.

The broker carries job ids only; the rows they name live in the database. With no ``BROKER_URL`` the
broker is Celery's filesystem transport in the instance folder (no server needed) and ``lms run`` starts a
worker beside the web server; otherwise ``BROKER_URL`` names RabbitMQ (``amqp://``) or Redis
(``redis://``). Messages are acknowledged only after a task finishes and re-delivered if its worker is
lost, so work survives a killed worker.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

celery = Celery("lms", set_as_current=False)
_flask_app: Flask | None = None
EMBEDDED_POLLING_SECONDS = 0.05
EMBEDDED_SCHEME = "lmsfilesystem"


class _AtomicFilesystemChannel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # kombu creates the message file where workers look and then writes it; a worker polling in
        # between took the empty file and died of a JSONDecodeError. Written under a name workers skip
        # (it does not end in ".<queue>.msg") and renamed into place, a message appears whole or not at all.
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as handle:
                handle.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class AtomicFilesystemTransport(filesystem.Transport):
    """kombu's filesystem transport with each message file written whole before workers can see it."""

    Channel = _AtomicFilesystemChannel


TRANSPORT_ALIASES.setdefault(EMBEDDED_SCHEME, f"{__name__}:AtomicFilesystemTransport")


def broker_folder(app: Flask) -> Path:
    return Path(app.instance_path) / "broker"


def is_embedded(app: Flask) -> bool:
    """True when the broker is the filesystem one inside the instance folder."""
    return not app.config.get("BROKER_URL")


def init_app(app: Flask) -> None:
    """Point the Celery app at the configured broker (creating the embedded broker's folder)."""
    global _flask_app
    _flask_app = app
    options: dict[str, Any] = {}
    if is_embedded(app):
        folder = broker_folder(app)
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        (folder / "control").mkdir(parents=True, exist_ok=True)
        url = f"{EMBEDDED_SCHEME}://"
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # otherwise "./control" in the working directory
            "store_processed": False,
            # how often an idle worker looks for a message: at kombu's 1 s, each job of a burst waited
            # ~0.75 s for its worker to look (a listing of a small folder costs well under a millisecond)
            "polling_interval": EMBEDDED_POLLING_SECONDS,
        }
    else:
        url = str(app.config["BROKER_URL"])
        if url.startswith(("redis://", "rediss://")):
            # an unacknowledged message returns to the queue after this long (its worker died)
            options = {"visibility_timeout": max(60, int(app.config["JOB_LEASE_SECONDS"]) * 2)}
    celery.conf.update(
        broker_url=url,
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        task_default_queue=str(app.config["QUEUE_NAME"]),
        broker_heartbeat=0 if url.startswith("amqp") else None,
    )


@contextmanager
def app_context() -> Iterator[Flask]:
    """The Flask app's context inside a task (workers are plain processes)."""
    if _flask_app is None:
        raise RuntimeError("the queue was not initialised with an app")
    with _flask_app.app_context():
        yield _flask_app


def send(task_name: str, *args: Any) -> bool:
    """Hand a task to the broker; False (logged) if the broker cannot be reached: the database row stays
    queued and a worker's sweep sends it again."""
    try:
        celery.send_task(task_name, args=list(args), queue=celery.conf.task_default_queue)
    except Exception:  # the broker is down or unreachable; the job is safe in the database
        log.exception("could not send %s%r to the broker", task_name, args)
        return False
    return True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(app: Flask, concurrency: int | None = None) -> None:
    """Run a Celery worker for this app in the foreground (what ``lms worker`` does)."""
    from celery.signals import worker_process_init

    from lms.extensions import db

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_kwargs: Any) -> None:
        # a forked pool process must not share the parent's database connections
        with app.app_context():
            db.engine.dispose(close=False)

    processes = concurrency or app.config.get("WORKER_CONCURRENCY") or os.cpu_count() or 1
    worker = celery.Worker(
        pool="prefork",
        concurrency=int(processes),
        loglevel="INFO",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        hostname=f"lms@{socket.gethostname()}.{os.getpid()}",
        queues=[str(app.config["QUEUE_NAME"])],
        optimization="fair",
    )
    worker.start()
    sys.exit(worker.exitcode or 0)


def start_embedded_worker(app: Flask) -> subprocess.Popen[bytes] | None:
    """Start ``lms worker`` beside the web server when the configuration asks for it."""
    wanted = app.config.get("EMBEDDED_WORKER")
    if wanted is None:
        wanted = is_embedded(app)
    if not wanted:
        return None
    env = dict(os.environ, LMS_INSTANCE_PATH=app.instance_path)
    return subprocess.Popen([sys.executable, "-m", "lms", "worker"], env=env)
