"""The ``lms`` command. Heavy imports live inside command bodies so that ``lms --help`` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def make_app(*, serving: bool = False, **overrides):
    """Create the app, turning a configuration problem into a clean CLI error.

    A command's app closes its database connections when its app context ends (a command is one
    unit of work); a serving app keeps its pool.
    """
    from lms import ConfigError, create_app

    try:
        app = create_app(overrides or None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not serving:
        from lms.extensions import db

        @app.teardown_appcontext
        def close_connections(_error: BaseException | None) -> None:
            db.session.remove()
            db.engine.dispose()

    return app


class LmsGroup(click.Group):
    """The core's commands plus one group per installed plugin, loaded only when used."""

    def _plugin_commands(self) -> dict[str, object]:
        from lms.plugins import installed_plugins

        commands = {}
        for entry_point in installed_plugins().values():
            plugin = entry_point.load()
            if plugin.cli_name:
                commands[plugin.cli_name] = plugin
        return commands

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugin_commands()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        plugin = self._plugin_commands().get(name)
        return plugin.cli() if plugin is not None else None  # type: ignore[attr-defined]


@click.group(cls=LmsGroup)
def main() -> None:
    """Blended LMS: a learning-management system for blended vocational AI courses."""


@main.command("init")
def init_command() -> None:
    """Create the instance folder, its secret key and the database (safe to run again)."""
    import secrets

    from lms import default_instance_path

    instance = default_instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    config_file = instance / "config.py"
    if not config_file.exists():
        config_file.write_text(
            "# Written by `lms init`. Keep this file private: it holds the session signing key.\n"
            f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
        )
        config_file.chmod(0o600)
        click.echo(f"wrote {config_file}")
    else:
        click.echo(f"kept {config_file}")
    app = make_app()
    with app.app_context():
        from lms.db import upgrade_database

        upgrade_database()
    click.echo(f"database ready: {app.config['DATABASE_URL']}")


@main.command("demo")
@click.option("--password", default="lms-demo", show_default=True, help="Password of every demo account.")
def demo_command(password: str) -> None:
    """Load the demo scenario: institutions, staff, a live 64-hour cohort of 29 trainees."""
    app = make_app()
    with app.app_context():
        from lms.demo import load_demo

        logins = load_demo(password)
    click.echo(f"Demo logins (password: {password}):")
    for role, usernames in logins.items():
        click.echo(f"  {role:<9} {', '.join(usernames)}")


@main.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def run_command(host: str, port: int, threads: int) -> None:
    """Serve the LMS with a production WSGI server (waitress), with a grading worker beside it when the
    broker is the embedded one."""
    import atexit
    import signal

    from waitress import serve

    from lms.queue import start_embedded_worker

    app = make_app(serving=True)
    worker = start_embedded_worker(app)
    if worker is not None:
        click.echo(f"started a grading worker (pid {worker.pid})")

        def stop_worker() -> None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except Exception:
                worker.kill()

        atexit.register(stop_worker)
        # SIGTERM (a service manager stopping us) exits through atexit, so the worker stops too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(app, host=host, port=port, threads=threads, ident="lms")


@main.command("worker")
@click.option(
    "--jobs", type=int, default=None, help="Grading processes (default: WORKER_CONCURRENCY or cores)."
)
def worker_command(jobs: int | None) -> None:
    """Run a background worker (grading); run any number, on any machine sharing database and broker."""
    from lms.queue import run_worker

    run_worker(make_app(serving=True), concurrency=jobs)


@main.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    app = make_app()
    with app.app_context():
        from lms.db import upgrade_database

        upgrade_database(revision)
    click.echo("database upgraded")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    app = make_app()
    with app.app_context():
        import flask_migrate

        flask_migrate.downgrade(revision=revision)


@db_group.command("current")
def db_current() -> None:
    """Show the database's current revision."""
    app = make_app()
    with app.app_context():
        import flask_migrate

        flask_migrate.current()


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database (developers)."""
    app = make_app()
    with app.app_context():
        import flask_migrate

        flask_migrate.revision(message=message, autogenerate=True)


@main.group("users")
def users_group() -> None:
    """Accounts: create, import from CSV, API tokens."""


@users_group.command("create")
@click.argument("username")
@click.option("--real-name", required=True)
@click.option("--role", type=click.Choice(["admin", "trainer", "assessor", "trainee"]), required=True)
@click.option(
    "--institution", "institution_code", default=None, help="Institution code (none: platform-wide admin)."
)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--email", default="")
def users_create(
    username: str, real_name: str, role: str, institution_code: str | None, password: str, email: str
) -> None:
    """Create one account."""
    app = make_app()
    with app.app_context():
        from sqlalchemy import select

        from lms.extensions import db
        from lms.models import Institution, Role
        from lms.services import DomainError, accounts

        institution = None
        if institution_code:
            institution = db.session.scalar(select(Institution).where(Institution.code == institution_code))
            if institution is None:
                raise click.ClickException(f"no institution with code {institution_code!r}")
        try:
            user = accounts.create_user(
                username=username,
                real_name=real_name,
                password=password,
                email=email,
                grants=[(Role(role), institution)],
            )
        except DomainError as exc:
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.echo(f"created {user.username}")


@users_group.command("token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--days", default=None, type=int, help="Lifetime in days (default: API_TOKEN_LIFETIME_DAYS).")
def users_token(username: str, name: str, days: int | None) -> None:
    """Issue a new API token for USERNAME; the token is the last line printed."""
    app = make_app()
    with app.app_context():
        from lms.extensions import db
        from lms.services import accounts, tokens

        user = accounts.get_user_by_username(username)
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        if not user.active:
            raise click.ClickException(f"user {username!r} is deactivated")
        lifetime = days if days is not None else app.config["API_TOKEN_LIFETIME_DAYS"]
        token, plaintext = tokens.issue_token(user, name, lifetime, actor=None)
        db.session.commit()
        expires = token.expires_at.isoformat() if token.expires_at else "never"
        click.echo(f"token for {user.username} (expires {expires}):", err=True)
        click.echo(plaintext)


@users_group.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and import nothing.")
@click.option(
    "--institution",
    "institution_code",
    default=None,
    help="Training base code for the trainee role (default: each row's cohort's base).",
)
def users_import(csv_file: Path, dry_run: bool, institution_code: str | None) -> None:
    """Import trainees from CSV (username, real_name, email, phone, employer, cohort); all or nothing."""
    app = make_app()
    with app.app_context():
        from lms.extensions import db
        from lms.services import user_import

        data = csv_file.read_bytes()
        try:
            result = user_import.import_users_csv(
                data,
                actor=None,
                dry_run=dry_run,
                institution_code=institution_code,
                max_bytes=app.config["USER_IMPORT_MAX_BYTES"],
                max_rows=app.config["USER_IMPORT_MAX_ROWS"],
            )
        except user_import.ImportRejected as exc:
            db.session.rollback()
            for problem in exc.problems:
                click.echo(
                    f"{csv_file}:{problem.row}: {problem.message}"
                    if problem.row
                    else f"{csv_file}: {problem.message}",
                    err=True,
                )
            click.echo(f"nothing imported: {len(exc.problems)} problem(s)", err=True)
            sys.exit(1)
        if dry_run:
            db.session.rollback()
            click.echo(
                f"{csv_file}: {result.created} user(s) would be created, "
                f"{result.enrolled} enrolment(s) made; nothing imported (dry run)"
            )
        else:
            db.session.commit()
            click.echo(f"{csv_file}: created {result.created} user(s), made {result.enrolled} enrolment(s)")
