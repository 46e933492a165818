"""A finished job: its media, its transcript (copy it, jump to a segment, correct it), exports, resume,
re-run, delete."""

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.i18n import error_text, t
from ttservice.jobs import Job, JobStatus, Runner, Segment
from ttservice.transcription import export

MIME = {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt", "json": "application/json"}
VIDEO = {".mp4", ".mkv", ".mov", ".webm", ".avi"}
# Streamlit holds played media in the web app's memory: a larger file is not played in the page.
PLAYER_MAX_BYTES = 256 * 2**20


def player(job: Job, start: float, chosen: bool, end: float | None = None) -> None:
    """The job's media, from `start` (and playing, once a segment was chosen), to `end` if given."""
    path = Path(job.media_path) if job.media_path else None
    try:
        size = path.stat().st_size if path else None
    except OSError:
        size = None
    if size is None:
        st.caption(t("job_view.no_media"))
        return
    if size > PLAYER_MAX_BYTES:
        st.caption(t("job_view.media_too_large", mb=f"{PLAYER_MAX_BYTES / 2**20:.0f}"))
        return
    show = st.video if path.suffix.lower() in VIDEO else st.audio
    show(
        str(path), start_time=int(start), end_time=int(end) + 1 if end is not None else None, autoplay=chosen
    )


def transcript(job: Job, segments: list[Segment]) -> None:
    table_key = f"segments-{job.id}"
    rows = (st.session_state.get(table_key) or {}).get("selection", {}).get("rows", [])
    chosen = rows[0] if rows and rows[0] < len(segments) else None
    player(job, segments[chosen].start if chosen is not None else 0.0, chosen is not None)
    text_tab, segments_tab = st.tabs([t("job_view.text"), t("job_view.segments")])
    with text_tab:
        st.caption(t("job_view.copy_hint"))
        st.code(export.to_txt(segments).strip(), language=None, wrap_lines=True)
    with segments_tab:
        st.caption(t("job_view.jump_hint"))
        columns = {
            t("job_view.start"): [export.timestamp(s.start, ".")[:-4] for s in segments],
            t("job_view.end"): [export.timestamp(s.end, ".")[:-4] for s in segments],
        }
        if any(s.speaker for s in segments):
            columns[t("job_view.speaker")] = [s.speaker or "" for s in segments]
        columns[t("job_view.segment_text")] = [s.text for s in segments]
        columns[t("job_view.edited")] = ["✎" if s.edited else "" for s in segments]
        st.dataframe(
            pd.DataFrame(columns),
            key=table_key,
            on_select="rerun",
            selection_mode="single-row",
            hide_index=True,
            width="stretch",
        )
        correction(job, segments, chosen or 0)


def correction(job: Job, segments: list[Segment], index: int) -> None:
    """The chosen segment's text and speaker, to correct (or restore); the original is kept."""
    store = services.store()
    segment = segments[index]
    with st.form(f"correct-{job.id}-{index}"):
        st.markdown(t("job_view.correct", n=index, start=export.timestamp(segment.start, ".")[:-4]))
        st.caption(t("job_view.correct_hint"))
        text = st.text_area(t("job_view.segment_text"), value=segment.text, key=f"text-{job.id}-{index}")
        speaker = st.text_input(
            t("job_view.speaker"), value=segment.speaker or "", key=f"who-{job.id}-{index}"
        )
        row = st.container(horizontal=True)
        save = row.form_submit_button(t("job_view.save"), type="primary")
        restore = row.form_submit_button(t("job_view.restore"), disabled=not segment.edited)
    if not (save or restore):
        return
    try:
        if restore:
            actions.corrections.restore(store, job.id, index)
            st.toast(t("job_view.restored", n=index))
        else:
            changed_text = text if text != segment.text else None
            changed_speaker = speaker if speaker != (segment.speaker or "") else None
            if changed_text is None and changed_speaker is None:
                return
            actions.corrections.edit(store, job.id, index, changed_text, changed_speaker)
            st.toast(t("job_view.saved", n=index))
    except TTServiceError as error:
        st.error(error_text(error))
        return
    st.rerun()


SAMPLE_SECONDS = 5  # of a speaker's first words, to tell who it is


def speakers_panel(job: Job) -> None:
    """Each speaker with their talk time and a few seconds of their first words; rename, merge."""
    store = services.store()
    found = actions.corrections.speakers(store, job.id)
    if not found:
        return
    st.subheader(t("job_view.speakers"))
    names = [s["name"] or s["label"] for s in found]
    for s, shown in zip(found, names, strict=True):
        with st.container(border=True):
            talk = t("job_view.talk", seconds=f"{s['talk_seconds']:.0f}", n=s["segments"])
            st.markdown(f"**{shown}** · {talk}")
            player(job, s["first_start"], False, s["first_start"] + SAMPLE_SECONDS)
            with st.form(f"speaker-{job.id}-{s['label']}"):
                left, right = st.columns(2)
                name = left.text_input(
                    t("job_view.speaker_name"), value=s["name"] or "", key=f"name-{job.id}-{s['label']}"
                )
                others = [n for n in names if n != shown]
                into = right.selectbox(
                    t("job_view.merge_into"),
                    ["", *others],
                    format_func=lambda n: n or t("job_view.keep_apart"),
                    key=f"merge-{job.id}-{s['label']}",
                )
                if not st.form_submit_button(t("job_view.save_speaker")):
                    continue
            try:
                if into:
                    actions.corrections.merge_speakers(store, job.id, s["label"], into)
                elif name != (s["name"] or ""):
                    actions.corrections.rename_speaker(store, job.id, s["label"], name)
            except TTServiceError as error:
                st.error(error_text(error))
                return
            st.rerun()


LABEL_CHOICES = ["auto", "1", "2", "3", "4", "5", "6"]  # any number of speakers, or so many


def label_form(job: Job) -> None:
    """Label (or label again) the finished job's speakers: the service's worker does it, supervised."""
    from ttservice.transcription import speakers

    if not speakers.installed():
        return
    with st.form(f"label-{job.id}"):
        left, right = st.columns(2, vertical_alignment="bottom")
        who = left.selectbox(
            t("job_view.label_how_many"),
            LABEL_CHOICES,
            format_func=lambda v: t("job_view.label_any") if v == "auto" else v,
        )
        if not right.form_submit_button(
            t("job_view.label_again" if job.options.speakers else "job_view.label")
        ):
            return
    try:
        actions.corrections.relabel(
            services.store(), job.id, None if who == "auto" else int(who), Runner.SERVICE
        )
    except TTServiceError as error:
        st.error(error_text(error))
        return
    st.rerun()  # the job view follows it as it runs (or waits for the service)


def finished_view(job: Job) -> None:
    store, settings = services.store(), services.settings()
    segments = store.segments(job.id)
    if job.reason:
        (st.error if job.status is JobStatus.FAILED else st.warning)(error_text(job.reason))
    if segments and job.status is not JobStatus.COMPLETED:
        st.info(t("job_view.partial", n=len(segments)))
    if job.status is JobStatus.COMPLETED and not segments:
        st.info(t("job_view.no_speech"))
    if segments:
        transcript(job, segments)
        speakers_panel(job)
        if job.status is JobStatus.COMPLETED:
            label_form(job)
        stem = (job.filename or f"job_{job.id}").rsplit(".", 1)[0]
        downloads = st.container(horizontal=True)
        for fmt in export.FORMATS:
            downloads.download_button(
                t("job_view.download", format=fmt.upper()),
                # made when clicked, not at every rerun (Thai subtitles take their word segmenter)
                partial(export.render, fmt, segments, job, settings.subtitles),
                file_name=f"{stem}.{fmt}",
                mime=MIME[fmt],
                key=f"dl-{fmt}-{job.id}",
                on_click="ignore",
            )
    actions_row = st.container(horizontal=True)
    if job.resumable and actions_row.button(
        t("job_view.resume", at=export.timestamp(store.resume_point(job.id), ".")), key=f"resume-{job.id}"
    ):
        try:
            actions.resume(store, job.id, Runner.SERVICE)
        except TTServiceError as error:
            st.error(error_text(error))
        else:
            st.rerun()
    if job.media_path and actions_row.button(t("job_view.rerun"), key=f"rerun-{job.id}"):
        try:
            new_id = actions.rerun(store, job.id)
        except TTServiceError as error:
            st.error(error_text(error))
        else:
            st.query_params["job"] = str(new_id)
            st.rerun()
    confirm_key = f"confirm-delete-{job.id}"
    if actions_row.button(t("job_view.delete"), key=f"delete-{job.id}"):
        st.session_state[confirm_key] = True
    if st.session_state.get(confirm_key):
        st.warning(t("job_view.delete_confirm", id=job.id))
        if st.button(t("job_view.delete_yes"), key=f"yes-delete-{job.id}"):
            st.session_state.pop(confirm_key)
            try:
                actions.delete(store, settings, job.id)
            except TTServiceError as error:
                st.error(error_text(error))
                return
            del st.query_params["job"]
            st.rerun()
