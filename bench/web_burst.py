"""The web path under a burst: N submissions posted at once to the JSON API of `lms run` (embedded broker
and worker, as `make run` serves), graded through the queue, against `lms grade autograde --jobs
<cores>` on the very same notebooks.

    .venv/bin/python bench/web_burst.py [--submissions 100] [--keep]

A fresh instance gets `lms init` and `lms demo`; the bench picks the demo cohort's first released
assignment whose source notebook imports scikit-learn (else its first), and the demo trainees each hand in
up to four correct attempts (each made distinct by a comment, so none is a duplicate). Printed: the
seconds from the first POST until the last submission is graded, notebooks per minute for both paths,
their ratio, and whether every submission got the same score on both paths.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lms(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(BIN / "lms"), *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"lms {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare(instance: Path, count: int) -> dict[str, Any]:
    """Pick the assignment, issue tokens, build ``count`` distinct correct notebooks (in the instance)."""
    os.environ["LMS_INSTANCE_PATH"] = str(instance)
    import nbformat
    from sqlalchemy import select

    from graders.models import Assignment
    from lms import create_app
    from lms.extensions import db
    from lms.models import Cohort, Enrollment, User
    from lms.services import tokens

    app = create_app()
    with app.app_context():
        cohort = db.session.scalars(select(Cohort).order_by(Cohort.id)).first()
        assert cohort is not None, "lms demo made no cohort"
        assignments = db.session.scalars(
            select(Assignment)
            .where(Assignment.cohort_id == cohort.id, Assignment.release_notebook.is_not(None))
            .order_by(Assignment.id)
        ).all()
        assert assignments, "the demo cohort has no released assignment"
        chosen = next((a for a in assignments if "sklearn" in a.source_notebook), assignments[0])
        trainees = db.session.scalars(
            select(User)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(Enrollment.cohort_id == cohort.id)
        ).all()
        attempts = -(-count // len(trainees))
        if attempts > chosen.max_submissions:
            limit = chosen.max_submissions
            sys.exit(f"{count} submissions need {attempts} attempts per trainee; the limit is {limit}")
        source = nbformat.reads(chosen.source_notebook, as_version=4)
        solutions = {
            cell.metadata["nbgrader"]["grade_id"]: cell.source
            for cell in source.cells
            if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code"
        }
        plan = []
        for index in range(count):
            trainee = trainees[index % len(trainees)]
            release = nbformat.reads(chosen.release_notebook, as_version=4)
            for cell in release.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in solutions:
                    cell.source = f"# submission {index} by {trainee.username}\n" + solutions[grade_id]
            plan.append({"username": trainee.username, "notebook": nbformat.writes(release)})
        issued = {}
        for trainee in trainees:
            _, plaintext = tokens.issue_token(trainee, "web burst bench", 1, actor=None)
            issued[trainee.username] = plaintext
        db.session.commit()
        return {
            "assignment": chosen.id,
            "slug": chosen.slug,
            "notebook": chosen.notebook,
            "source": chosen.source_notebook,
            "tokens": issued,
            "plan": plan,
        }


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    server = subprocess.Popen(
        [str(BIN / "lms"), "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except requests.ConnectionError:
            time.sleep(0.3)
    server.kill()
    sys.exit(f"lms run did not answer on port {port}; see {log}")


def burst(port: int, setup: dict[str, Any]) -> tuple[float, dict[int, dict[str, Any]]]:
    """POST every planned notebook at once; poll until each is graded; seconds from first POST to last."""
    base = f"http://127.0.0.1:{port}/api/v1"
    session = requests.Session()

    def post(item: dict[str, Any]) -> tuple[int, str]:
        token = setup["tokens"][item["username"]]
        for _attempt in range(5):
            response = session.post(
                f"{base}/assignments/{setup['assignment']}/submissions",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": (f"{setup['notebook']}.ipynb", item["notebook"].encode(), "application/json")},
                timeout=60,
            )
            # 409: this trainee's other attempt was being stored at that moment; the API asks to try again
            if response.status_code != 409:
                break
            time.sleep(0.2)
        if response.status_code != 201:
            raise SystemExit(f"POST answered {response.status_code}: {response.text[:300]}")
        return int(response.json()["id"]), token

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        posted = list(pool.map(post, setup["plan"]))
    print(f"posted {len(posted)} submissions in {time.monotonic() - started:.1f} s")
    pending = dict(posted)
    results: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 3600
    while pending and time.monotonic() < deadline:
        # the queue is first in, first out: ask in order and stop at the first one still waiting (the
        # trainee's page polls like this too), so that polling does not slow the grading down
        for submission_id, token in list(pending.items()):
            state = session.get(
                f"{base}/submissions/{submission_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ).json()
            if state["status"] in ("queued", "grading"):
                break
            results[submission_id] = state
            del pending[submission_id]
        time.sleep(0.25)
    if pending:
        raise SystemExit(f"{len(pending)} submissions were still waiting after an hour")
    return time.monotonic() - started, results


def job_timings(instance: Path) -> dict[str, float]:
    """From the web path's job rows: median seconds a job ran, median idle seconds between one worker
    process's jobs, and seconds from the first job queued to the first one started."""
    import statistics
    from collections import defaultdict

    from sqlalchemy import select

    from graders.models import GradingJob, JobKind
    from lms import create_app
    from lms.extensions import db

    os.environ["LMS_INSTANCE_PATH"] = str(instance)
    with create_app().app_context():
        jobs = db.session.scalars(
            select(GradingJob).where(GradingJob.kind == JobKind.AUTOGRADE).order_by(GradingJob.started_at)
        ).all()
        spans = [(job.worker, job.enqueued_at, job.started_at, job.finished_at) for job in jobs]
        by_worker: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for worker, _queued, started, finished in spans:
            if started is not None and finished is not None:
                by_worker[worker].append((started, finished))
        ran = [(end - start).total_seconds() for mine in by_worker.values() for start, end in mine]
        idle = [
            (later[0] - earlier[1]).total_seconds()
            for mine in by_worker.values()
            for earlier, later in zip(mine, mine[1:], strict=False)
        ]
        first = min(started for mine in by_worker.values() for started, _ in mine) - min(
            queued for _, queued, _, _ in spans
        )
        return {
            "job": statistics.median(ran),
            "idle": statistics.median(idle) if idle else 0.0,
            "first": first.total_seconds(),
        }


def grade_with_cli(folder: Path, setup: dict[str, Any], cores: int) -> tuple[float, dict[str, float]]:
    """The same notebooks as an nbgrader course directory graded by `lms grade autograde --jobs cores`."""
    from graders import nbgrader_backend

    course = folder / "course"
    source = course / "source" / setup["slug"]
    source.mkdir(parents=True)
    (source / f"{setup['notebook']}.ipynb").write_text(setup["source"])
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = 'burst'\n"
    )
    nbgrader_backend.generate_assignment(nbgrader_backend.course_config(course, "burst"), setup["slug"])
    for index, item in enumerate(setup["plan"]):
        target = course / "submitted" / f"s{index:03d}" / setup["slug"]
        target.mkdir(parents=True)
        (target / f"{setup['notebook']}.ipynb").write_text(item["notebook"])
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "lms"), "grade", "autograde", str(course), setup["slug"], "--jobs", str(cores)],
        check=True,
        capture_output=True,
    )
    seconds = time.monotonic() - started
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "burst") as gradebook:
        scores = {
            f"s{index:03d}": float(gradebook.find_submission(setup["slug"], f"s{index:03d}").score)
            for index in range(len(setup["plan"]))
        }
    return seconds, scores


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp(prefix="lms-web-burst-"))
    instance = folder / "instance"
    env = {**os.environ, "LMS_INSTANCE_PATH": str(instance), "LMS_WORKER_CONCURRENCY": str(cores)}
    server = None
    try:
        lms(env, "init")
        lms(env, "demo")
        setup = prepare(instance, args.submissions)
        print(f"web burst: {args.submissions} submissions of {setup['slug']} to `lms run` ({cores} cores)")
        port = free_port()
        server = serve(env, port, folder / "server.log")
        web_seconds, web_results = burst(port, setup)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        server = None
        cli_seconds, cli_scores = grade_with_cli(folder, setup, cores)
        count = args.submissions
        failed = [s for s in web_results.values() if s["status"] == "failed"]
        web_scores = sorted(
            float(s["auto_score"] if s["auto_score"] is not None else -1) for s in web_results.values()
        )
        # The CLI's total includes the manual answer only when nbgrader has a score for it: compare autograded
        # points, which on both paths come from the same test cells.
        for label, seconds in (
            ("web (API, queue, embedded worker)", web_seconds),
            (f"cli (lms grade autograde --jobs {cores})", cli_seconds),
        ):
            print(f"  {label:40s} {seconds:7.1f} s  {count / seconds * 60:6.1f}/min")
        print(f"  web / cli time: {web_seconds / cli_seconds:.2f}")
        timings = job_timings(instance)
        print(
            f"  web path per job: {timings['job']:.2f} s running, {timings['idle']:.3f} s idle before a "
            f"worker's next job (medians); the first started {timings['first']:.1f} s after it was queued"
        )
        print(f"  failed on the web path: {len(failed)}; distinct web auto scores: {sorted(set(web_scores))}")
        print(f"  distinct cli scores: {sorted(set(cli_scores.values()))}")
        print(json.dumps({"web_seconds": web_seconds, "cli_seconds": cli_seconds, "count": count}))
        return 1 if failed else 0
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGKILL)
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
