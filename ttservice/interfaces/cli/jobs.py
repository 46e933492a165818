"""Commands that look at and act on jobs: jobs, show, logs, stop, cleanup, export."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import click

from ... import actions, messages
from ...exceptions import TTServiceError
from ...jobs import JobStatus, logs
from ...messages import Message
from ...supervision import ProcessManager
from ...transcription import export
from .common import Cancel, err, fail, fmt_time, json_option, out, output_options, services, write


@click.command()
@click.option(
    "-s", "--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs with this status."
)
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="How many, newest first.")
@click.option(
    "--search",
    metavar="TEXT",
    help="Only jobs whose transcript holds every word of TEXT, in any language (Thai inside compounds too).",
)
@json_option("a JSON array")
def jobs(status: str | None, limit: int, search: str | None, as_json: bool) -> None:
    """List jobs, newest first."""
    from rich.table import Table

    try:
        settings, store = services()
        rows = store.list_jobs(status=JobStatus(status) if status else None, limit=limit, search=search)
    except TTServiceError as error:
        fail(error)
    stall = settings.stall_timeout
    if as_json:
        data = [j.to_dict() | {"stalled": j.stalled(stall)} for j in rows]
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    table = Table("id", "status", "file", "created", "progress", "host", "pid", "error")
    for j in rows:
        table.add_row(
            str(j.id),
            f"{j.status.value} [yellow](stalled)[/yellow]" if j.stalled(stall) else j.status.value,
            j.filename or "-",
            fmt_time(j.created_at),
            f"{j.progress:.0%}",
            j.host or "-",
            str(j.process_id or "-"),
            messages.text(j.reason, messages.locale_language())[:60],
        )
    out.print(table)


@click.command()
@click.argument("job_id", type=int)
@json_option("JSON")
def show(job_id: int, as_json: bool) -> None:
    """Show one job: status, process, progress and transcript."""
    try:
        settings, store = services()
        data = actions.details(store, settings, job_id)
    except TTServiceError as error:
        fail(error)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    lang = messages.locale_language()
    if data["error_code"]:  # the reason in the terminal's language
        reason = messages.Message.from_dict({"code": data["error_code"], "params": data["error_params"]})
        data["error"] = reason.text(lang)
    warnings = [messages.Message.from_dict(w).text(lang) for w in data["warning_codes"]]
    data["warnings"] = " ".join(warnings) or None
    for key, value in data.items():
        if key not in ("options", "text", "download", "error_code", "error_params", "warning_codes"):
            out.print(f"[bold]{key}[/bold]: {value if value is not None else '-'}", highlight=False)
    if data["stalled"]:
        out.print("[yellow]This job is alive but its progress has not moved; it may be stalled.[/yellow]")
    out.print(f"\n{data['text']}", highlight=False)


@click.command("logs")
@click.argument("job_id", type=int)
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
def logs_cmd(job_id: int, lines: int, follow: bool) -> None:
    """Print the tail of a job's log."""
    try:
        settings, store = services()
        pm = ProcessManager(store, settings)
        job = store.get_job(job_id)
        if pm.elsewhere(job) and follow:  # its file is on that machine: follow its copy in the store
            chunks = store.log_chunks(job_id)
            tail = "".join(text for _, text in chunks).splitlines()[-lines:] if lines > 0 else []
            after = chunks[-1][0] if chunks else 0
        else:
            tail, after = pm.get_logs(job_id, lines), 0
        for line in tail:
            print(line)
        if follow:
            cancel = Cancel()
            running = lambda: not cancel.event.is_set() and not store.get_job(job_id).finished  # noqa: E731
            if pm.elsewhere(job):
                new = logs.follow_copy(partial(store.log_chunks, job_id), after, running)
            else:
                new = logs.follow(
                    Path(job.log_file_path or logs.job_log_path(settings.log_dir, job_id)), running
                )
            for line in new:
                print(line, flush=True)
    except TTServiceError as error:
        fail(error)


@click.command()
@click.argument("job_id", type=int)
def stop(job_id: int) -> None:
    """Stop a queued or running job (its whole process tree) and mark it cancelled."""
    try:
        settings, store = services()
        stopped = ProcessManager(store, settings).kill_process(job_id)
        job = store.get_job(job_id)
    except TTServiceError as error:
        fail(error)
    if not stopped:
        fail(Message("job.not_running", job_id=job_id, status=job.status.value))
    err.print(f"Job {job_id} is {job.status.value}.", highlight=False)


@click.command()
@json_option("JSON")
def cleanup(as_json: bool) -> None:
    """Run the orphan sweep now: finalise jobs whose worker is gone or silent."""
    try:
        settings, store = services()
        result = ProcessManager(store, settings).cleanup_orphaned_processes()
    except TTServiceError as error:
        fail(error)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for job_id, why in result.finalized:
        out.print(f"job {job_id}: {why.text(messages.locale_language())}", highlight=False)
    out.print(
        f"{len(result.finalized)} job(s) fixed, {len(result.killed)} process tree(s) stopped,"
        f" {result.logs_removed} old log file(s) removed.",
        highlight=False,
    )


@click.command("export")
@click.argument("job_id", type=int)
@output_options
def export_cmd(job_id: int, fmt: str, output: Path | None) -> None:
    """Export a job's transcript (partial for a stopped or failed job)."""
    try:
        settings, store = services()
        job = store.get_job(job_id)
        text = export.render(fmt, store.segments(job_id), job, settings.subtitles)
    except TTServiceError as error:
        fail(error)
    write(text, output)
