"""What a grading worker does with a job id: claim the job, build a throwaway nbgrader course directory
from the database (a worker shares nothing else with the web server), run nbgrader with the kernel in
the sandbox, and write the grades back, all idempotently: a job run twice leaves one grade per cell."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from flask import Flask, current_app
from sqlalchemy.orm import undefer
from traitlets.config import Config

from graders import services
from graders.models import Assignment, CellKind, GradingJob, JobKind, Submission, SubmissionStatus
from graders.repair import read_upload, repair
from graders.sandbox import Limits, SandboxUnavailable, check_mode
from lms.extensions import db
from lms.queue import worker_name
from lms.timeutil import utcnow

log = logging.getLogger(__name__)

COURSE_ID = "lms"
STUDENT = "trainee"  # the only student of a throwaway course directory: no name reaches nbgrader


def grading_limits(app_config: dict, assignment: Assignment | None = None) -> Limits:
    """The sandbox limits from the configuration and the assignment's time limits."""
    base = Limits()
    return Limits(
        cell_timeout=assignment.cell_timeout if assignment else base.cell_timeout,
        total_timeout=assignment.total_timeout if assignment else base.total_timeout,
        cpu_seconds=int(app_config.get("GRADER_CPU_SECONDS", base.cpu_seconds)),
        memory_bytes=int(app_config.get("GRADER_MEMORY_BYTES", base.memory_bytes)),
        processes=int(app_config.get("GRADER_PROCESSES", base.processes)),
        open_files=int(app_config.get("GRADER_OPEN_FILES", base.open_files)),
        file_bytes=int(app_config.get("GRADER_FILE_BYTES", base.file_bytes)),
        disk_bytes=int(app_config.get("GRADER_DISK_BYTES", base.disk_bytes)),
        output_bytes=int(app_config.get("GRADER_OUTPUT_BYTES", base.output_bytes)),
    )


@contextmanager
def _lease_heartbeat(app: Flask, job_id: int, worker: str, lease: int) -> Iterator[None]:
    """Renew the job's lease while it runs, from a thread with its own database session."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(1.0, lease / 3)):
            try:
                with app.app_context():
                    services.extend_lease(job_id, worker, lease)
                    db.session.commit()
                    db.session.remove()
            except Exception:  # a missed beat only risks a second run, which is idempotent
                log.exception("lease renewal of job %s failed", job_id)

    thread = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def run_job(job_id: int) -> str:
    """Run one job if this worker can claim it; returns what happened (for logs and tests)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    worker = worker_name()
    lease = int(config["JOB_LEASE_SECONDS"])
    if not services.claim_job(job_id, worker, lease):
        db.session.rollback()
        return "not claimed"
    db.session.commit()
    job = db.session.get(GradingJob, job_id)
    assert job is not None
    if job.attempts > int(config["JOB_MAX_ATTEMPTS"]):
        _give_up(job, f"stopped after {job.attempts - 1} attempts that did not finish")
        db.session.commit()
        return "gave up"
    with _lease_heartbeat(app, job_id, worker, lease):
        try:
            check_mode(str(config["GRADER_SANDBOX"]))
            outcome = _release(job) if job.kind == JobKind.RELEASE else _autograde(job)
        except SandboxUnavailable as error:
            db.session.rollback()
            job = db.session.get(GradingJob, job_id)
            assert job is not None
            _give_up(job, str(error))
            outcome = "refused"
        except Exception as error:  # nbgrader failed on the assignment itself: record it, never lose it
            log.exception("job %s failed", job_id)
            db.session.rollback()
            job = db.session.get(GradingJob, job_id)
            assert job is not None
            _give_up(job, f"{type(error).__name__}: {error}")
            outcome = "failed"
    db.session.commit()
    return outcome


def _give_up(job: GradingJob, reason: str) -> None:
    services.finish_job(job, failed=True, log=[reason])
    if job.kind == JobKind.RELEASE:
        job.assignment.release_error = reason[:2000]
    elif job.submission is not None:
        services.record_failure(job.submission, reason)


def _write_source(root: Path, assignment: Assignment) -> None:
    folder = root / "source" / assignment.slug
    folder.mkdir(parents=True)
    (folder / f"{assignment.notebook}.ipynb").write_text(assignment.source_notebook)


def _config(root: Path, assignment: Assignment | None) -> Config:
    from graders import nbgrader_backend

    return nbgrader_backend.course_config(
        root,
        COURSE_ID,
        limits=grading_limits(current_app.config, assignment),
        sandbox_mode=str(current_app.config["GRADER_SANDBOX"]),
        engine=str(current_app.config["GRADER_ENGINE"]),
        preload=_preload(assignment) if assignment is not None else (),
    )


_PRELOADS: dict[str, tuple[str, ...]] = {}


def _preload(assignment: Assignment) -> tuple[str, ...]:
    """What the warm sandbox imports for this assignment: the libraries its source notebook imports."""
    from graders.warm import preload_modules

    key = assignment.source_sha256
    if key not in _PRELOADS:
        _PRELOADS[key] = preload_modules([json.loads(assignment.source_notebook)])
    return _PRELOADS[key]


def _release(job: GradingJob) -> str:
    assignment = db.session.scalar(
        db.select(Assignment)
        .where(Assignment.id == job.assignment_id)
        .options(undefer(Assignment.source_notebook))
    )
    assert assignment is not None
    return release_now(job, assignment)


def release_now(job: GradingJob, assignment: Assignment) -> str:
    """Make the assignment's release notebook with nbgrader (no trainee code runs) and finish ``job``."""
    template = _course_template(assignment)
    release = nbformat.read(
        template / "release" / assignment.slug / f"{assignment.notebook}.ipynb", as_version=4
    )
    release.metadata["lms"] = {"assignment": assignment.slug}
    services.record_release(assignment, nbformat.writes(release))
    services.finish_job(job, failed=False, log=[f"generated the release notebook of {assignment.slug}"])
    return "released"


_TEMPLATES: dict[tuple[str, str, str], Path] = {}


def _course_template(assignment: Assignment) -> Path:
    """A generated course directory for the assignment (source, release, gradebook), made once per worker
    process and copied per job: nbgrader's generate_assignment is the slow part of a small job."""
    from graders import nbgrader_backend

    key = (assignment.slug, assignment.notebook, assignment.source_sha256)
    cached = _TEMPLATES.get(key)
    if cached is not None and (cached / "gradebook.db").exists():
        return cached
    root = Path(tempfile.mkdtemp(prefix=f"lms-template-{assignment.slug}-"))
    _write_source(root, assignment)
    nbgrader_backend.generate_assignment(_config(root, assignment), assignment.slug)
    _TEMPLATES[key] = root
    return root


def _autograde(job: GradingJob) -> str:
    from graders import nbgrader_backend

    submission = db.session.scalar(
        db.select(Submission).where(Submission.id == job.submission_id).options(undefer(Submission.content))
    )
    assert submission is not None
    assignment = db.session.scalar(
        db.select(Assignment)
        .where(Assignment.id == submission.assignment_id)
        .options(undefer(Assignment.source_notebook), undefer(Assignment.release_notebook))
    )
    assert assignment is not None and assignment.release_notebook is not None
    submission.status = SubmissionStatus.GRADING
    db.session.commit()

    template = _course_template(assignment)
    with tempfile.TemporaryDirectory(prefix="lms-grade-") as folder:
        root = Path(folder)
        shutil.copytree(template / "source", root / "source")
        shutil.copy2(template / "gradebook.db", root / "gradebook.db")
        # Never trust the upload: graded and test cells come from the assignment (see graders.repair).
        uploaded = read_upload(submission.content, max_bytes=len(submission.content) + 1, max_cells=10**9)
        repaired = repair(uploaded, nbformat.reads(assignment.release_notebook, as_version=4))
        target = root / "submitted" / STUDENT / assignment.slug
        target.mkdir(parents=True)
        nbformat.write(repaired.notebook, target / f"{assignment.notebook}.ipynb")
        nbgrader_backend.set_submission_time(root, STUDENT, assignment.slug, submission.submitted_at)
        cfg = _config(root, assignment)
        lines = nbgrader_backend.autograde(cfg, assignment.slug, STUDENT)
        results = nbgrader_backend.read_results(root, cfg, assignment.slug, assignment.notebook, STUDENT)
        autograded = (
            root / "autograded" / STUDENT / assignment.slug / f"{assignment.notebook}.ipynb"
        ).read_text()
    order = {cell_id: index for index, cell_id in enumerate(_grade_order(assignment.source_notebook))}
    cells = sorted(
        (
            services.GradedCell(
                grade_id=result.grade_id,
                kind=CellKind.MANUAL if result.kind == "manual" else CellKind.TESTS,
                max_points=result.max_points,
                auto_points=result.auto_points,
            )
            for result in results
        ),
        key=lambda cell: order.get(cell.grade_id, len(order)),
    )
    final = services.record_autograde(submission, cells, autograded, now=utcnow())
    services.finish_job(job, failed=False, log=lines[-50:])
    return "graded" if final else "autograded"


def _grade_order(source_notebook: str) -> list[str]:
    notebook = json.loads(source_notebook)
    return [
        str(cell["metadata"]["nbgrader"]["grade_id"])
        for cell in notebook.get("cells", [])
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade")
    ]
