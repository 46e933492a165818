"""`ttservice edit`: correct a segment of a transcript (its text, its speaker), or put it back."""

from __future__ import annotations

import json

import click

from ... import actions
from ...exceptions import RequestError, TTServiceError
from ...jobs import iso
from ...transcription import export
from .common import EXIT_BAD_INPUT, fail, json_option, out, services


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
    except RequestError as error:
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
