"""Commands that run or maintain the service: serve, agent, hosts, and db migrate | backup | rollback."""

from __future__ import annotations

import json
import sys

import click

from ... import actions
from ...config import Settings
from ...exceptions import TTServiceError
from ...jobs import open_store
from .common import err, fail, fmt_time, json_option, out, services


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback exposes the app.",
)
@click.option("--port", type=int, default=8501, show_default=True, help="Port of the web app.")
@click.option("--ui/--no-ui", default=True, help="--no-ui runs without the web app.")
@click.option("--api-port", type=int, default=8000, show_default=True, help="Port of the HTTP API.")
@click.option("--api/--no-api", default=True, help="--no-api runs without the HTTP API.")
def serve(host: str, port: int, ui: bool, api_port: int, api: bool) -> None:
    """Run the service: the web app, the HTTP API and the one manager that runs queued jobs."""
    import logging

    from ...supervision.service import Service, ServiceAlreadyRunning

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = Service(Settings.from_env(), host, port, ui, api_port if api else None).run()
    except (ServiceAlreadyRunning, TTServiceError) as error:
        fail(error)
    sys.exit(code)


@click.command()
@click.option(
    "--slots", type=int, help="Jobs this machine runs at once (default TTSERVICE_MAX_CONCURRENT_JOBS)."
)
@click.option(
    "--name", help="The name its jobs are recorded under (default: TTSERVICE_HOST_NAME, or the hostname)."
)
def agent(slots: int | None, name: str | None) -> None:
    """Run jobs of the shared PostgreSQL store (TTSERVICE_DATABASE_URL) on this machine."""
    import logging

    from ...supervision.agent import Agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = Agent(Settings.from_env(), slots, name).run()
    except TTServiceError as error:
        fail(error)
    sys.exit(code)


@click.command()
@json_option("a JSON array")
def hosts(as_json: bool) -> None:
    """List the machines that run jobs: their slots, jobs running, last contact, and the sweeper
    (the one that recovers the jobs of machines gone silent)."""
    from rich.table import Table

    try:
        _, store = services()
        machines = actions.jobs.machines(store)
    except TTServiceError as error:
        fail(error)
    if as_json:
        print(json.dumps([m.to_dict() for m in machines], ensure_ascii=False, indent=2))
        return
    sweeping = any(m.sweeper for m in machines)  # on PostgreSQL: the service that recovers lost jobs
    table = Table("name", "slots", "running", "version", "started", "last contact")
    if sweeping:
        table.add_column("sweeper")
    for m in machines:
        h = m.host
        row = [
            h.name, str(h.slots), str(m.running), h.version or "-",
            fmt_time(h.started_at), fmt_time(h.last_seen) + ("" if m.in_contact else " (away)"),
        ]  # fmt: skip
        table.add_row(*row, *(["yes" if m.sweeper else ""] if sweeping else []))
    out.print(table)


@click.group("db")
def db_app() -> None:
    """Database maintenance: migrate, back up, roll back."""


@db_app.command()
def migrate() -> None:
    """Back up the database, then bring its schema up to date."""
    try:
        settings = Settings.from_env()
        store = open_store(settings, migrate=False)
        backups = store.migrate()
    except TTServiceError as error:
        fail(error)
    for path in backups:
        err.print(f"Backed up to {path}", highlight=False)
    err.print(f"Schema is at version {store.schema_version()}.", highlight=False)


@db_app.command()
def backup() -> None:
    """Copy the database to a timestamped file under the backups folder."""
    try:
        settings = Settings.from_env()
        path = open_store(settings, migrate=False).backup()
    except TTServiceError as error:
        fail(error)
    err.print(f"Backed up to {path}", highlight=False)


@db_app.command()
def rollback() -> None:
    """Restore the newest pre-migration backup (the current file is backed up first)."""
    try:
        settings = Settings.from_env()
        store = open_store(settings, migrate=False)
        source, saved = store.rollback()
    except TTServiceError as error:
        fail(error)
    err.print(f"Saved the current database to {saved}", highlight=False)
    err.print(f"Restored {source} (schema version {store.schema_version()}).", highlight=False)
