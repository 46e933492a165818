"""Streamlit AppTest of each page over a real store in a temp dir."""

import datetime
import json
import sys
import time

from ttservice.interfaces.web.components.charts import jobs_over_time
from ttservice.jobs import JobStatus, Runner, Segment, TranscribeOptions
from ttservice.supervision.process_manager import ProcessManager

from ..conftest import DUMMY, ttservice
from ..conftest import run_page as run


def finished_job(store, make_job, text="ask not what your country can do"):
    job_id = make_job()
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 2.5, text)], 2.5, 1.0)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    return job_id


def test_transcribe_page_queues_an_upload(web_env, store):
    at = run("transcribe.py")
    assert at.title[0].value == "Transcribe"
    assert [c.label for c in at.checkbox] == ["Word timestamps", "Stop this job if I leave the page"]
    at.button[0].click().run()  # Start without a file
    assert at.error[0].value == "Choose at least one file to transcribe."
    assert store.page_of_jobs()[0] == 0


def test_transcribe_page_offers_the_engines_and_history_says_which_ran(web_env, store, make_job):
    at = run("transcribe.py")
    engine = next(s for s in at.selectbox if s.label == "Engine")
    assert engine.value == "auto" and "whisper.cpp" in engine.options and "faster-whisper" in engine.options
    job_id = finished_job(store, make_job)
    assert "on whisper.cpp" not in run("history.py", job=job_id).markdown[0].value
    store.set_engine(job_id, "whisper.cpp")
    assert "on whisper.cpp" in run("history.py", job=job_id).markdown[0].value


def test_history_lists_filters_and_searches(web_env, store, make_job):
    done = finished_job(store, make_job)
    queued = make_job()
    at = run("history.py")
    assert at.title[0].value == "History"
    assert "2 job(s)" in [c.value for c in at.caption]
    at.text_input[0].set_value("country").run()
    assert "1 job(s)" in [c.value for c in at.caption]
    at.text_input[0].set_value("").run()
    at.selectbox[0].set_value("queued").run()
    assert "1 job(s)" in [c.value for c in at.caption]
    assert [b.key for b in at.button if b.key and b.key.startswith("view-")] == [f"view-{queued}"]
    assert done != queued


def test_history_marks_the_jobs_that_came_through_the_api(web_env, store, make_job):
    api_job, page_job = make_job(Runner.API), make_job()
    listed = [c.value for c in run("history.py").caption]
    assert sum("via the API" in text for text in listed) == 1
    assert "via the API" in run("history.py", job=api_job).markdown[0].value
    assert "via the API" not in run("history.py", job=page_job).markdown[0].value


def test_history_job_view_shows_transcript_and_rerun(web_env, store, make_job):
    job_id = finished_job(store, make_job)
    at = run("history.py", job=job_id)
    assert at.title[0].value == f"Job {job_id}: jfk.wav"
    assert "ask not what your country" in at.code[0].value
    at.button(key=f"rerun-{job_id}").click().run()
    assert store.page_of_jobs()[0] == 2
    rerun = store.list_jobs(limit=1)[0]
    assert rerun.options == store.get_job(job_id).options and rerun.status is JobStatus.QUEUED


def test_history_corrects_a_segment_and_restores_it(web_env, store, make_job):
    job_id = finished_job(store, make_job)
    at = run("history.py", job=job_id)
    at.text_area(key=f"text-{job_id}-0").set_value("ask not what your country can do for you")
    at.text_input(key=f"who-{job_id}-0").set_value("คุณสมชาย")
    [save] = [b for b in at.button if b.label == "Save the correction"]
    save.click().run()
    [segment] = store.segments(job_id)
    assert (segment.text, segment.speaker, segment.edited) == (
        "ask not what your country can do for you",
        "คุณสมชาย",
        True,
    )
    assert "คุณสมชาย: ask not what your country can do for you" in at.code[0].value  # the page reads it back
    [restore] = [b for b in at.button if b.label == "Restore the original"]
    restore.click().run()
    assert (
        store.segments(job_id)[0].text == "ask not what your country can do"
        and not store.segments(job_id)[0].edited
    )
    at.text_area(key=f"text-{job_id}-0").set_value("  ")  # in a form: sent with its button
    [save] = [b for b in at.button if b.label == "Save the correction"]
    save.click().run()
    assert "cannot be empty" in at.error[0].value and not store.segments(job_id)[0].edited


def test_history_speakers_panel_names_and_merges_speakers(web_env, store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 2.0, "สวัสดีครับ"), Segment(2.0, 5.0, "Hello")], 5.0, 1.0)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    for index, label in ((0, "SPEAKER_1"), (1, "SPEAKER_2")):
        store.edit_segment(job_id, index, {"speaker": label})
    at = run("history.py", job=job_id)
    assert at.subheader[0].value == "Speakers"
    assert any("**SPEAKER_2** · 3 s of speech in 1 segment(s)" == m.value for m in at.markdown)
    at.text_input(key=f"name-{job_id}-SPEAKER_1").set_value("คุณสมชาย")
    at.button(key=f"FormSubmitter:speaker-{job_id}-SPEAKER_1-Save").click().run()
    assert [s.speaker for s in store.segments(job_id)] == ["คุณสมชาย", "SPEAKER_2"]
    at.selectbox(key=f"merge-{job_id}-SPEAKER_2").set_value("คุณสมชาย")
    at.button(key=f"FormSubmitter:speaker-{job_id}-SPEAKER_2-Save").click().run()
    assert [s.speaker for s in store.segments(job_id)] == ["คุณสมชาย", "คุณสมชาย"]
    assert "คุณสมชาย: สวัสดีครับ Hello" in at.code[0].value


def test_history_queues_a_finished_job_to_label_its_speakers(web_env, store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 2.0, "ask not")], 11.0, 1.0)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    at = run("history.py", job=job_id)
    next(s for s in at.selectbox if s.label == "Speakers to find").set_value("2")
    next(b for b in at.button if b.label == "Label the speakers").click().run()
    job = store.get_job(job_id)
    assert job.status is JobStatus.QUEUED and job.runner is Runner.SERVICE and job.options.speakers == "2"
    assert job.progress == 1.0 and [s.text for s in store.segments(job_id)] == ["ask not"]


def test_history_delete_removes_job_and_files(web_env, store, make_job, settings):
    job_id = finished_job(store, make_job)
    log = settings.log_dir / f"job_{job_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("x")
    at = run("history.py", job=job_id)
    at.button(key=f"delete-{job_id}").click().run()
    at.button(key=f"yes-delete-{job_id}").click().run()
    assert store.page_of_jobs()[0] == 0 and not log.exists()


def test_live_panel_shows_metrics_and_stops(web_env, store, make_job, settings):
    pm = ProcessManager(store, settings)
    job_id = make_job()
    pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), "chatty"])
    try:
        at = run("history.py", job=job_id)
        assert any(s.value == "Live Logs" for s in at.subheader)
        labels = [m.label for m in at.metric]
        assert labels == ["CPU", "Memory", "Elapsed", "Speed"]
        assert int(at.metric[1].value.split()[0]) > 0
        at.button(key=f"stop-{job_id}").click().run()
        at.button(key=f"yes-stop-{job_id}").click().run()
        assert store.get_job(job_id).status is JobStatus.CANCELLED
        assert any("cancelled" in m.value for m in at.markdown)
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_statistics_page_counts_statuses_and_cleans_up(web_env, store, make_job, settings):
    finished_job(store, make_job)
    stale = make_job()
    store.claim(stale, 5, now=time.time() - settings.orphan_timeout - 60)
    at = run("statistics.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Completed"] == "1" and metrics["Processing"] == "1"
    at.button(key="cleanup-statistics").click().run()
    assert "Clean-up fixed 1 job(s)" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Failed"] == "1" and metrics["Processing"] == "0"
    assert metrics["Success rate"] == "50%"


def test_a_transcribed_job_labelling_its_speakers_says_so(web_env, store, settings):
    from ttservice import actions

    job_id = store.create_job("meeting.wav", None, TranscribeOptions(speakers="auto"))
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 2.5, "ask not")], 2.5, 0.5)
    assert actions.details(store, settings, job_id)["phase"] == "transcribing"
    store.add_segments(job_id, [], 5.0, 1.0)  # the last segment committed: labelling follows
    assert actions.details(store, settings, job_id)["phase"] == "labelling speakers"
    at = run("history.py", job=job_id)
    assert any("now telling its speakers apart" in i.value for i in at.info)


def test_statistics_show_a_jobs_talk_time_by_speaker(web_env, store, make_job):
    assert any("No job has speakers yet" in c.value for c in run("statistics.py").caption)
    job_id = finished_job(store, make_job)
    store.edit_segment(job_id, 0, {"speaker": "SPEAKER_1"})
    store.name_speaker(job_id, "SPEAKER_1", "คุณสมชาย")
    at = run("statistics.py")
    assert "Talk time by speaker" in [h.value for h in at.subheader]
    assert at.selectbox[0].options == [f"{job_id}: jfk.wav"]
    charts = [e for e in at.main if getattr(e, "type", "") == "vega_lite_chart"]
    data = [c.proto.SerializeToString() for c in charts]
    assert any("คุณสมชาย".encode() in d and b"Minutes of speech" in d for d in data)  # by name, in minutes


def test_resume_button_requeues_a_stopped_job_keeping_its_transcript(web_env, store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 2.5, "ask not")], 2.5, 0.2)
    store.transition(job_id, JobStatus.CANCELLED, error_message="Stopped by the user.")
    at = run("history.py", job=job_id)
    button = at.button(key=f"resume-{job_id}")
    assert button.label == "Resume from 00:00:02.500"
    button.click().run()
    job = store.get_job(job_id)
    assert job.status is JobStatus.QUEUED and job.resumed_from == 2.5 and job.error is None
    assert [s.text for s in store.segments(job_id)] == ["ask not"]
    completed = finished_job(store, make_job)
    keys = [b.key for b in run("history.py", job=completed).button]
    assert f"rerun-{completed}" in keys and f"resume-{completed}" not in keys  # nothing to resume


def test_stalled_job_is_flagged_in_history_and_cli(web_env, store, make_job, settings):
    job_id = make_job()
    store.claim(job_id, 5, now=time.time() - settings.stall_timeout - 60)
    store.heartbeat(job_id)  # alive, but no progress since it started
    at = run("history.py")
    assert any("stalled" in m.value for m in at.markdown)
    listed = json.loads(ttservice(settings, "jobs", "--json").stdout)
    assert listed[0]["stalled"] is True
    assert "(stalled)" in ttservice(settings, "jobs").stdout


def test_live_logs_show_the_newest_lines_and_the_transcript_as_it_grows(web_env, store, make_job, settings):
    job_id = make_job()
    store.claim(job_id, 5)
    log = settings.log_dir / f"job_{job_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"line {i}\n" for i in range(1, 51)))
    store.add_segments(job_id, [Segment(float(i), i + 1.0, f"segment {i}") for i in range(10)], 10, 0.5)
    at = run("history.py", job=job_id)
    transcript, newest = at.code[0].value, at.code[1].value
    assert transcript.splitlines()[-1].endswith("segment 9") and "segment 3" not in transcript
    assert newest.splitlines()[-1] == "line 50" and "line 38" not in newest  # no scrolling to see it
    assert len(at.expander) == 1 and at.code[2].value.splitlines()[0] == "line 1"


def test_a_finished_job_plays_its_media_and_jumps_to_a_chosen_segment(web_env, store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 4.2, "and so my fellow"), Segment(4.2, 8.7, "ask not")], 8.7, 1)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    at = run("history.py", job=job_id)
    assert "and so my fellow\nask not" == at.code[0].value  # the text alone, for its copy button
    [player] = at.get("audio")
    assert player.proto.start_time == 0
    table = at.dataframe[0]
    assert list(table.value.iloc[:, 0]) == ["00:00:00", "00:00:04"]
    at.session_state[f"segments-{job_id}"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    [player] = at.get("audio")
    assert player.proto.start_time == 4 and player.proto.autoplay


def test_history_shows_an_earlier_apps_transcript(web_env, settings):
    from ..jobs.test_migrations import make_legacy

    make_legacy(settings.db_path)
    at = run("history.py", job=1)
    assert "ประชุมเรื่องงบประมาณ" in at.code[0].value
    assert [b.label for b in at.get("download_button")] == [
        f"Download {f}" for f in ("TXT", "SRT", "VTT", "JSON")
    ]
    listed = run("history.py")
    listed.text_input[0].set_value("งบ").run()
    assert "1 job(s)" in [c.value for c in listed.caption]


def test_statistics_format_numbers_and_chart_a_week_for_one_job(web_env, store, make_job):
    job_id = finished_job(store, make_job)
    with store.db.transaction() as conn:
        conn.execute(
            "UPDATE transcription_jobs SET started_at = created_at, finished_at = created_at + 1,"
            " processed_seconds = 20.1532 WHERE id = ?",
            (job_id,),
        )
    at = run("statistics.py")
    assert not at.exception
    assert list(at.dataframe[0].value.iloc[:, 1]) == ["20.2x realtime"]
    today = datetime.date(2026, 12, 2)
    table, unit = jobs_over_time([{"day": "2026-12-02", "status": "completed", "n": 1}], today)
    assert unit == "day" and len(table) == 7 and table["completed"].tolist() == [0] * 6 + [1]


def test_the_jobs_chart_counts_by_week_then_by_month_as_history_grows():
    today = datetime.date(2026, 12, 2)
    days = [today - datetime.timedelta(days=n) for n in range(0, 1000)]
    daily = [{"day": d.isoformat(), "status": "completed", "n": 10} for d in days]
    table, unit = jobs_over_time(daily, today)
    assert unit == "month" and 30 <= len(table) <= 36 and table["completed"].sum() == 10_000
    table, unit = jobs_over_time(daily[:300], today)
    assert unit == "week" and 43 <= len(table) <= 45 and table["completed"].sum() == 3000
    assert all(day.weekday() == 0 for day in table.index)


def test_history_pages_and_keeps_a_page_that_a_search_makes_too_far(web_env, store, make_job):
    made = [make_job() for _ in range(24)]
    found = finished_job(store, make_job, "การประชุมงบประมาณ")
    at = run("history.py")
    [page] = at.number_input
    assert page.label == "Page (of 2)"
    views = lambda: [b.key for b in at.button if b.key and b.key.startswith("view-")]  # noqa: E731
    assert len(views()) == 20
    page.set_value(2).run()
    assert views() == [f"view-{job_id}" for job_id in reversed(made[:5])]
    at.text_input[0].set_value("งบ").run()  # one match: page 2 no longer exists
    assert not at.exception and views() == [f"view-{found}"] and not at.number_input


def test_history_shows_a_jobs_warnings_and_peak_memory(web_env, store, make_job):
    from ttservice.messages import Message

    job_id = finished_job(store, make_job)
    used = Message("memory.one_at_a_time")
    store.add_warning(job_id, Message("memory.batch_reduced", batch=8, limit_gb=0.4, used=used))
    store.set_peak_memory(job_id, 512.4)
    at = run("history.py", job=job_id)
    assert at.warning[0].value == (
        "Decoding 8 clips at a time does not fit in the memory limit of 0.4 GB: this job decodes one"
        " window at a time."
    )
    assert "peak memory 512 MB" in at.markdown[0].value
