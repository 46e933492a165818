"""`ttservice edit`: correct a segment of a transcript (its text, its speaker), or put it back;
`ttservice speakers`: a job's speakers, with their talk time, renamed or merged."""

from __future__ import annotations

import json

import click

from ... import actions
from ...exceptions import JobNotFound, RequestError, TTServiceError
from ...jobs import JobStatus, Runner, iso
from ...messages import Message
from ...transcription import export
from .common import EXIT_BAD_INPUT, EXIT_CANCELLED, fail, json_option, note, out, services


@click.command("edit")
@click.argument("job_id", type=int)
@click.argument("index", type=int)
@click.option("--text", help="The segment's corrected text.")
@click.option("--speaker", help='Who said it (a name, or SPEAKER_N); "" for no one.')
@click.option("--restore", is_flag=True, help="Put the segment back as the engine wrote it.")
@click.option("--history", is_flag=True, help="List the segment's revisions instead.")
@json_option("the segment (or its revisions) as JSON")
def edit(
    job_id: int,
    index: int,
    text: str | None,
    speaker: str | None,
    restore: bool,
    history: bool,
    as_json: bool,
) -> None:
    """Correct segment INDEX of job JOB_ID (0 is the first; `export --format json` lists them).

    Exports, search, Statistics and the API read the corrected text; the original is kept, every
    correction is a revision (--history), and --restore puts the original back.
    """
    try:
        _, store = services()
        if history:
            revisions = actions.corrections.revisions(store, job_id, index)
            if as_json:
                print(json.dumps(revisions, ensure_ascii=False, indent=2))
                return
            for r in revisions:
                at = iso(r["at"]) if r["at"] is not None else "-"
                who = f"{r['speaker']}: " if r["speaker"] else ""
                out.print(f"{r['kind']:8} {at}  {who}{r['text']}", highlight=False)
            return
        if restore:
            segment = actions.corrections.restore(store, job_id, index)
        else:
            segment = actions.corrections.edit(store, job_id, index, text, speaker)
    except (RequestError, JobNotFound) as error:  # what was asked cannot be: bad input
        fail(error, EXIT_BAD_INPUT)
    except TTServiceError as error:
        fail(error)
    if as_json:
        data = {"index": index, "start": segment.start, "end": segment.end, "text": segment.text,
                "speaker": segment.speaker, "edited": segment.edited}  # fmt: skip
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    who = f"{segment.speaker}: " if segment.speaker else ""
    start, end = export.timestamp(segment.start, "."), export.timestamp(segment.end, ".")
    out.print(f"[{start} -> {end}] {who}{segment.text}", highlight=False)


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        who, sep, what = value.partition("=")
        if not sep or not who.strip():
            raise click.BadParameter(f"{value!r} is not OLD=NEW", param_hint=option)
        pairs.append((who, what))
    return pairs


def _label(store, settings, job_id: int, num: int | None) -> None:
    """Label the finished job's speakers in a supervised worker, with its progress; one sentence
    and a non-zero exit if it did not end labelled."""
    from pathlib import Path

    from .run import _run_with_progress

    job = actions.corrections.relabel(store, job_id, num, Runner.FOREGROUND)
    job = _run_with_progress(Path(job.media_path or ""), job.options, job_id, settings, store)
    if job.status is JobStatus.CANCELLED:
        fail(Message("speakers.stopped", job_id=job_id), EXIT_CANCELLED)
    if job.status is not JobStatus.COMPLETED:
        fail(job.reason or Message("job.failed_without_reason", job_id=job_id))
    for warning in job.warnings:
        if warning.code.startswith("speakers."):
            fail(warning)


@click.command("speakers")
@click.argument("job_id", type=int)
@click.option("--rename", multiple=True, metavar="WHO=NAME", help='Name a speaker: SPEAKER_1="คุณสมชาย".')
@click.option("--merge", multiple=True, metavar="WHO=INTO", help="One speaker's segments become another's.")
@click.option("--label", "relabel", is_flag=True, help="Label (or label again) who speaks, from the media.")
@click.option("--num", type=click.IntRange(1, 20), help="With --label: how many speakers there are.")
@json_option("the speakers as JSON")
def speakers(
    job_id: int,
    rename: tuple[str, ...],
    merge: tuple[str, ...],
    relabel: bool,
    num: int | None,
    as_json: bool,
) -> None:
    """List the speakers of job JOB_ID with their talk time; label them, rename or merge them.

    A speaker is named by its label (SPEAKER_1) or the name it has; names apply everywhere the
    transcript is read (exports, History, the API). --label finds who speaks without
    transcribing again; speakers a person set stay as set.
    """
    try:
        settings, store = services()
        if relabel or num is not None:
            _label(store, settings, job_id, num)
        for who, name in _pairs(rename, "--rename"):
            actions.corrections.rename_speaker(store, job_id, who, name)
        for who, into in _pairs(merge, "--merge"):
            actions.corrections.merge_speakers(store, job_id, who, into)
        found = actions.corrections.speakers(store, job_id)
    except (RequestError, JobNotFound) as error:  # what was asked cannot be: bad input
        fail(error, EXIT_BAD_INPUT)
    except TTServiceError as error:
        fail(error)
    if as_json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not found:
        note(Message("edit.no_speakers", job_id=job_id))
    for s in found:
        name = f"{s['name']} ({s['label']})" if s["name"] else s["label"]
        first = export.timestamp(s["first_start"], ".")[:-4]
        out.print(f"{name}: {s['talk_seconds']:.1f} s in {s['segments']} segment(s), first at {first}",
                  highlight=False)  # fmt: skip
