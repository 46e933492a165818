import json
import sqlite3

import pytest

from ttservice.exceptions import StoreError
from ttservice.jobs import JobStatus, TranscribeOptions, open_store
from ttservice.jobs.sqlite.migrations import LATEST_VERSION
from ttservice.transcription import export

LEGACY_SCHEMA = """
CREATE TABLE transcription_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    filename TEXT NOT NULL,
    file_path TEXT,
    status TEXT DEFAULT 'pending',
    model TEXT,
    language TEXT,
    transcript TEXT,
    summary TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    completed_at TEXT,
    error_message TEXT,
    duration REAL
);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO users (name) VALUES ('somchai');
"""


LEGACY_COLUMNS = [
    "id",
    "filename",
    "file_path",
    "status",
    "model",
    "language",
    "transcript",
    "summary",
    "created_at",
    "completed_at",
    "error_message",
    "duration",
]


def make_legacy(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA)
    conn.executemany(
        "INSERT INTO transcription_jobs (filename, file_path, status, model, transcript, created_at,"
        " completed_at, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                "meeting.m4a",
                "/old/meeting.m4a",
                "completed",
                "medium",
                "สวัสดีครับ วันนี้เรามาประชุมเรื่องงบประมาณประจำปี",
                "2025-01-02 10:00:00",
                "2025-01-02 10:30:00",
                1800.0,
            ),
            ("lecture.mp3", None, "processing", None, None, "2025-02-03 09:00:00", None, None),
            ("memo.wav", "/old/memo.wav", "pending", "small", None, None, None, None),
        ],
    )
    conn.commit()
    conn.close()


def test_fresh_database_gets_latest_schema_without_backup(settings):
    store = open_store(settings)
    assert store.schema_version() == LATEST_VERSION
    assert store.migration_backups == []


def test_legacy_database_is_backed_up_then_extended_never_rewritten(settings):
    make_legacy(settings.db_path)
    before = sqlite3.connect(settings.db_path).execute("SELECT * FROM transcription_jobs").fetchall()

    store = open_store(settings)

    backup = settings.data_dir / "transcriptor.db.backup"
    assert backup in store.migration_backups
    assert any(p.parent == settings.backup_dir for p in store.migration_backups)
    kept = sqlite3.connect(backup)
    assert kept.execute("SELECT * FROM transcription_jobs").fetchall() == before
    assert kept.execute("PRAGMA user_version").fetchone()[0] == 0

    conn = sqlite3.connect(settings.db_path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(transcription_jobs)")]
    assert cols[: len(LEGACY_COLUMNS)] == LEGACY_COLUMNS
    assert {"process_id", "log_file_path", "last_heartbeat", "process_create_time"} <= set(cols)
    # old columns and rows are untouched
    old = conn.execute(f"SELECT {', '.join(LEGACY_COLUMNS)} FROM transcription_jobs").fetchall()
    assert old == before
    assert conn.execute("SELECT name FROM users").fetchall() == [("somchai",)]

    # NULLs in old rows are tolerated when read
    jobs = {j.filename: j for j in store.list_jobs()}
    assert jobs["meeting.m4a"].status is JobStatus.COMPLETED
    assert jobs["meeting.m4a"].created_at == "2025-01-02 10:00:00"
    assert jobs["lecture.mp3"].status is JobStatus.PROCESSING and jobs["lecture.mp3"].process_id is None
    assert jobs["memo.wav"].status is JobStatus.QUEUED and jobs["memo.wav"].media_path == "/old/memo.wav"
    assert jobs["lecture.mp3"].to_dict()["created_at"] == "2025-02-03 09:00:00"

    # new jobs fill the old NOT NULL column too
    job_id = store.create_job("new.wav", "/new.wav", TranscribeOptions())
    row = conn.execute("SELECT filename, original_filename FROM transcription_jobs WHERE id=?", (job_id,))
    assert row.fetchone() == ("new.wav", "new.wav")

    # opening again does not migrate (or back up) again
    assert open_store(settings).migration_backups == []


def test_rollback_restores_pre_migration_copy_after_saving_current(settings):
    make_legacy(settings.db_path)
    store = open_store(settings)
    store.create_job("after.wav", "/after.wav", TranscribeOptions())
    source, saved = store.rollback()
    assert "pre-migration" in source.name and "pre-rollback" in saved.name
    conn = sqlite3.connect(settings.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM transcription_jobs").fetchone()[0] == 3
    assert "process_id" not in {r[1] for r in conn.execute("PRAGMA table_info(transcription_jobs)")}
    # the rolled-back-from state is kept
    assert sqlite3.connect(saved).execute("SELECT count(*) FROM transcription_jobs").fetchone()[0] == 4


def test_rollback_without_backup_is_a_clear_error(settings):
    store = open_store(settings)
    with pytest.raises(StoreError, match="no pre-migration backup"):
        store.rollback()


def test_newer_schema_is_refused(settings):
    settings.data_dir.mkdir(parents=True)
    conn = sqlite3.connect(settings.db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this TTService"):
        open_store(settings)


def test_an_earlier_jobs_transcript_shows_exports_counts_and_is_found(settings):
    make_legacy(settings.db_path)
    before = sqlite3.connect(settings.db_path).execute("SELECT * FROM transcription_jobs").fetchall()
    store = open_store(settings)
    meeting = next(j for j in store.list_jobs() if j.filename == "meeting.m4a")
    [segment] = store.segments(meeting.id)
    assert segment.text == "สวัสดีครับ วันนี้เรามาประชุมเรื่องงบประมาณประจำปี" and not segment.timed
    assert (segment.start, segment.end) == (0.0, 1800.0)
    assert meeting.duration == 1800.0 and meeting.finished_at == 1735813800.0  # 2025-01-02 10:30 UTC
    # every format: the text whole, one untimed cue
    assert export.render("txt", [segment]) == segment.text + "\n"
    srt = export.render("srt", [segment])
    assert srt.startswith("1\n00:00:00,000 --> 00:30:00,000\n") and srt.count(" --> ") == 1
    assert "ประชุม" in export.render("vtt", [segment])
    data = json.loads(export.render("json", [segment], meeting))
    assert data["text"] == segment.text and data["segments"][0]["timed"] is False
    # search, Thai included, and the statistics
    assert [j.id for j in store.list_jobs(search="งบ")] == [meeting.id]
    assert [j.id for j in store.list_jobs(search="ประชุม")] == [meeting.id]
    stats = store.stats()
    assert stats["by_status"] == {"completed": 1, "processing": 1, "queued": 1}
    assert stats["audio_hours"] == 0.5
    assert {row["day"] for row in stats["daily"]} == {"2025-01-02", "2025-02-03"}
    # the earlier columns are as they were, and opening again copies nothing twice
    after = (
        sqlite3.connect(settings.db_path)
        .execute(f"SELECT {', '.join(LEGACY_COLUMNS)} FROM transcription_jobs")
        .fetchall()
    )
    assert after == before
    assert len(open_store(settings).segments(meeting.id)) == 1
