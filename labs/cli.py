"""``lms labs ...``: planning and lab kits for sites without a reliable connection."""

from typing import NoReturn

import click


@click.group("labs")
def labs_group() -> None:
    """Offline labs: planner and lab kits."""


@labs_group.command("plan")
@click.argument("cohort_code")
@click.option("--weekends-only", is_flag=True, help="Saturdays and Sundays only.")
@click.option(
    "--max-hours-per-day",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Hours of labs a cohort may have in one day (default 8).",
)
@click.option("--room", "rooms", multiple=True, metavar="CODE", help="Use only this room (repeatable).")
@click.option(
    "--start-time", "start_times", multiple=True, metavar="HH:MM", help="Allowed start time (repeatable)."
)
@click.option(
    "--unavailable",
    "unavailable_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="File of lines 'username YYYY-MM-DD ...': trainees' blackout dates, trainers' days away.",
)
@click.option("--hard-blackouts", is_flag=True, help="Never place a lab on a trainee's blackout date.")
@click.option("--time-limit", type=click.FloatRange(min=1), default=None, help="Solver seconds (default 20).")
@click.option("--json", "as_json", is_flag=True, help="Print the proposal as JSON.")
def plan_command(
    cohort_code: str,
    weekends_only: bool,
    max_hours_per_day: float | None,
    rooms: tuple[str, ...],
    start_times: tuple[str, ...],
    unavailable_file: str | None,
    hard_blackouts: bool,
    time_limit: float | None,
    as_json: bool,
) -> None:
    """Propose a schedule for a cohort's lab units (saves nothing: accept it in the web UI)."""
    import json
    from contextlib import nullcontext
    from pathlib import Path

    from flask import current_app, has_app_context

    context = nullcontext() if has_app_context() else _planner_app().app_context()
    with context:
        from labs import planning
        from lms.services import cohorts

        cohort = cohorts.get_cohort_by_code(cohort_code)
        if cohort is None:
            raise click.ClickException(f"no cohort {cohort_code!r}")
        try:
            default_hours = current_app.config.get(
                "LABS_PLANNER_MAX_HOURS_PER_DAY", planning.DEFAULT_MAX_HOURS_PER_DAY
            )
            options = planning.PlanOptions(
                weekends_only=weekends_only,
                max_hours_per_day=max_hours_per_day or default_hours,
                room_codes=rooms,
                start_times=planning.parse_start_times(start_times)
                if start_times
                else planning.configured_start_times(current_app.config),
                hard_blackouts=hard_blackouts,
                unavailable=planning.parse_unavailability(Path(unavailable_file).read_text("utf-8"))
                if unavailable_file
                else (),
                time_limit_seconds=time_limit
                or current_app.config.get("LABS_PLANNER_TIME_LIMIT", planning.DEFAULT_TIME_LIMIT_SECONDS),
            )
            result = planning.propose_plan(cohort, options)
        except planning.PlanningError as exc:
            raise click.ClickException(str(exc)) from exc
        proposal = result.proposal
        if as_json:
            click.echo(json.dumps(_plan_as_json(result), ensure_ascii=False, indent=2))
        else:
            click.echo(
                f"cohort {cohort.code}: {proposal.status} in {proposal.seconds:.2f} s "
                f"({proposal.variables} placement variables; times in {result.timezone})"
            )
            if result.skipped_units:
                click.echo(f"already scheduled, left as they are: {', '.join(result.skipped_units)}")
            if proposal.found:
                rows = [("unit", "date", "time", "room", "conflicts")] + [
                    (
                        p.unit_key,
                        p.starts_at.strftime("%Y-%m-%d %a"),
                        f"{p.starts_at:%H:%M}–{p.ends_at:%H:%M}",
                        p.room_code,
                        str(p.trainee_conflicts),
                    )
                    for p in proposal.placements
                ]
                widths = [max(len(row[n]) for row in rows) for n in range(5)]
                for row in rows:
                    cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                    click.echo("  ".join(cells).rstrip())
                click.echo(f"trainee conflicts: {proposal.trainee_conflicts}. Nothing was saved.")
        if not proposal.found:
            if proposal.status == "unknown":
                raise click.ClickException(
                    f"no plan found within {options.time_limit_seconds:g} s; try a longer --time-limit"
                )
            raise click.ClickException("no plan: " + " / ".join(result.messages))


def _planner_app():
    from lms.cli import make_app

    return make_app()


def _plan_as_json(result) -> dict:
    proposal = result.proposal
    return {
        "cohort": result.cohort.code,
        "status": proposal.status,
        "seconds": round(proposal.seconds, 3),
        "timezone": result.timezone,
        "trainee_conflicts": proposal.trainee_conflicts,
        "already_scheduled": result.skipped_units,
        "placements": [
            {
                "unit": p.unit_key,
                "title": p.title,
                "date": p.starts_at.date().isoformat(),
                "time": p.starts_at.strftime("%H:%M"),
                "ends": p.ends_at.strftime("%H:%M"),
                "room": p.room_code,
                "room_id": p.room_id,
                "trainee_conflicts": p.trainee_conflicts,
            }
            for p in proposal.placements
        ],
        "no_plan_because": [
            {"family": d.family, "message": message}
            for d, message in zip(proposal.diagnoses, result.messages, strict=True)
        ],
    }


# --- lab kits (labs/kit.py, labs/kit_server.py) ----------------------------------------------------------


@labs_group.group("kit")
def kit_group() -> None:
    """Lab kits for sites without a reliable connection: export, serve on a laptop, import results."""


def _fail(message: str) -> NoReturn:
    import sys

    click.echo(message, err=True)
    sys.exit(1)


@kit_group.command("export")
@click.argument("occurrence_id", metavar="OCCURRENCE", type=int)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Default: lab-kit-OCCURRENCE.zip."
)
def kit_export_command(occurrence_id: int, output: str | None) -> None:
    """Pack what lab meeting OCCURRENCE needs (roster, check-in secret, release notebooks) into a kit."""
    from pathlib import Path

    from labs.kit import KitExportRefused, export_kit, write_private
    from labs.models import LabOccurrence
    from lms.cli import make_app
    from lms.extensions import db

    path = Path(output or f"lab-kit-{occurrence_id}.zip")
    app = make_app()
    with app.app_context():
        occurrence = db.session.get(LabOccurrence, occurrence_id)
        if occurrence is None:
            _fail(f"no lab occurrence {occurrence_id}")
        try:
            kit = export_kit(occurrence, app.config["SECRET_KEY"])
        except KitExportRefused as exc:
            db.session.rollback()
            _fail(f"lab occurrence {occurrence_id}: {exc}")
        try:
            write_private(path, kit.data)  # it holds the check-in secret, the kit key and real names
        except OSError as exc:
            db.session.rollback()
            _fail(f"{path}: cannot write the kit: {exc.strerror}")
        db.session.commit()
    for warning in kit.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{path}: kit {kit.kit_id} for lab occurrence {occurrence_id}: {kit.trainees} trainee(s), "
        f"{len(kit.notebooks)} notebook(s). Keep it like a password: it holds the check-in secret."
    )


@kit_group.command("serve")
@click.argument("kit_file", metavar="KIT", type=click.Path(dir_okay=False))
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on (all: lab network).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--data",
    "data_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The server's own SQLite file (default: beside the kit, KIT with .sqlite3).",
)
def kit_serve_command(kit_file: str, host: str, port: int, data_file: str | None) -> None:
    """Run a small local LMS for one lab meeting from KIT: check-in, roster, notebook uploads."""
    from pathlib import Path

    from waitress import serve

    from labs.kit import KitRefused
    from labs.kit_server import create_kit_app, lan_address

    path = Path(kit_file)
    try:
        app = create_kit_app(path, Path(data_file) if data_file else None)
    except KitRefused as exc:
        _fail(f"{path}: {exc}")
    state = app.extensions["lab_kit"]
    kit = state.kit
    click.echo(f"lab kit {kit.kit_id}: {kit.title}, {kit.room}, {len(kit.roster)} trainee(s)")
    click.echo(f"records: {state.store.path}; results will be written to {state.results_path}")
    shown = (lan_address() or "127.0.0.1") if host in ("0.0.0.0", "::", "") else host
    click.echo(f"trainees: http://{shown}:{port}/   trainer: http://{shown}:{port}/trainer")
    click.echo(f"trainer PIN: {state.store.trainer_pin}")
    serve(app, host=host, port=port, threads=8, ident="lms-lab-kit")


@kit_group.command("import")
@click.argument("results_file", metavar="RESULTS", type=click.Path(dir_okay=False))
def kit_import_command(results_file: str) -> None:
    """Merge a kit's results (check-ins, marks, notebooks); again changes nothing; conflicts are listed."""
    from pathlib import Path

    from labs.kit import UPLOADS_FOLDER, KitRefused, discard_uploads, import_results, store_uploads
    from lms.cli import make_app
    from lms.db import commit_with_retry

    path = Path(results_file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror}")
    app = make_app()
    with app.app_context():
        root = Path(app.instance_path) / UPLOADS_FOLDER
        created: list[Path] = []

        def work():
            report = import_results(data, app.config["SECRET_KEY"])
            created.extend(store_uploads(report.files, root))
            return report

        try:
            report = commit_with_retry(work)
        except KitRefused as exc:
            discard_uploads(created, root)
            _fail(f"{path}: {exc} Nothing was imported.")
        except OSError as exc:
            discard_uploads(created, root)
            _fail(f"{path}: cannot store the notebooks under {root}: {exc.strerror}. Nothing was imported.")
        except BaseException:
            discard_uploads(created, root)
            raise
    for line in report.lines():
        click.echo(line)
