"""Versioned schema migrations (PRAGMA user_version), backups and rollback.

The earlier app left users a `transcription_jobs` table with columns of its own
and years of history. A migration never drops or rewrites a column or a row: it
backs the file up first, then only adds what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...exceptions import MigrationError

JOB_COLUMNS: dict[str, str] = {
    "original_filename": "TEXT",
    "media_path": "TEXT",
    "status": "TEXT NOT NULL DEFAULT 'queued'",
    "model": "TEXT",
    "language": "TEXT",
    "options_json": "TEXT",
    "runner": "TEXT",
    "created_at": "REAL",
    "started_at": "REAL",
    "finished_at": "REAL",
    "media_duration": "REAL",
    "progress": "REAL DEFAULT 0",
    "processed_seconds": "REAL DEFAULT 0",
    "error_message": "TEXT",
    "exit_code": "INTEGER",
    "process_id": "INTEGER",
    "process_create_time": "REAL",
    "log_file_path": "TEXT",
    "last_heartbeat": "TIMESTAMP",
    "last_progress_at": "REAL",
    "stop_requested_at": "REAL",
    "detected_language": "TEXT",
}


def _columns(conn: Any, table: str) -> dict[str, Any]:
    return {row[1]: row for row in conn.execute(f"PRAGMA table_info({table})")}


def _v1_jobs_and_segments(conn: Any) -> None:
    existing = _columns(conn, "transcription_jobs")
    if not existing:
        cols = ",\n  ".join(f"{name} {decl}" for name, decl in JOB_COLUMNS.items())
        conn.execute(
            f"CREATE TABLE transcription_jobs (\n  id INTEGER PRIMARY KEY AUTOINCREMENT,\n  {cols}\n)"
        )
    else:
        for name, decl in JOB_COLUMNS.items():
            if name not in existing:
                # ADD COLUMN cannot add NOT NULL without a default; old rows get NULLs.
                decl = decl.replace("NOT NULL ", "")
                conn.execute(f"ALTER TABLE transcription_jobs ADD COLUMN {name} {decl}")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS transcription_segments (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          job_id INTEGER NOT NULL REFERENCES transcription_jobs(id) ON DELETE CASCADE,
          start REAL NOT NULL,
          end REAL NOT NULL,
          text TEXT NOT NULL,
          words_json TEXT
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_segments_job ON transcription_segments(job_id, start)")
    # The active-jobs and orphan queries filter on status and order by heartbeat (until v4).
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_jobs_status_heartbeat ON transcription_jobs(status, last_heartbeat)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_jobs_process_id ON transcription_jobs(process_id)")


def _v2_leases_and_search(conn: Any) -> None:
    if "lease_renewed_at" not in _columns(conn, "transcription_jobs"):
        # Set while a page that asked "stop this job if I leave" is open.
        conn.execute("ALTER TABLE transcription_jobs ADD COLUMN lease_renewed_at REAL")
    conn.execute("CREATE INDEX IF NOT EXISTS idx_jobs_status_id ON transcription_jobs(status, id)")
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS segments_fts USING fts5("
        "text, content='transcription_segments', content_rowid='id')"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS segments_fts_insert AFTER INSERT ON transcription_segments"
        " BEGIN INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text); END"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS segments_fts_delete AFTER DELETE ON transcription_segments"
        " BEGIN INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text);"
        " END"
    )
    conn.execute("INSERT INTO segments_fts(segments_fts) VALUES ('rebuild')")


def _v3_resume(conn: Any) -> None:
    if "resumed_from" not in _columns(conn, "transcription_jobs"):
        # Where the current run of a resumed job began, so its speed counts only this run's audio.
        conn.execute("ALTER TABLE transcription_jobs ADD COLUMN resumed_from REAL DEFAULT 0")
    segment_columns = _columns(conn, "transcription_segments")
    for name, decl in (("tokens_json", "TEXT"), ("window_start", "REAL")):
        if name not in segment_columns:  # a resumed run re-decodes the last window exactly
            conn.execute(f"ALTER TABLE transcription_segments ADD COLUMN {name} {decl}")


def _v4_lighter_heartbeat(conn: Any) -> None:
    # A heartbeat that also moved an index entry wrote two pages, not one; the status
    # index alone keeps the active-jobs and orphan queries indexed (few jobs are processing).
    conn.execute("DROP INDEX IF EXISTS idx_jobs_status_heartbeat")


def _v5_models(conn: Any) -> None:
    if "language_probability" not in _columns(conn, "transcription_jobs"):
        conn.execute("ALTER TABLE transcription_jobs ADD COLUMN language_probability REAL")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS model_downloads (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          model TEXT NOT NULL,
          repo_id TEXT NOT NULL,
          status TEXT NOT NULL,
          runner TEXT NOT NULL,
          bytes_done INTEGER NOT NULL DEFAULT 0,
          bytes_total INTEGER,
          started_bytes INTEGER NOT NULL DEFAULT 0,
          error_message TEXT,
          process_id INTEGER,
          process_create_time REAL,
          log_file_path TEXT,
          last_heartbeat REAL,
          created_at REAL,
          started_at REAL,
          finished_at REAL,
          stop_requested_at REAL
        )"""
    )
    # One download per repo at a time, however many jobs wait for it: the database refuses a second.
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS idx_downloads_one_active ON model_downloads(repo_id)"
        " WHERE status = 'processing'"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_downloads_repo ON model_downloads(repo_id, id)")


def _v6_api(conn: Any) -> None:
    # An API job may name an address to be told when it ends; delivery is retried, so it is kept here.
    # A stop's reason is kept with the request, since the process that records the end may be another.
    columns = _columns(conn, "transcription_jobs")
    for name, decl in (
        ("stop_reason", "TEXT"),
        ("callback_url", "TEXT"),
        ("callback_status", "TEXT"),
        ("callback_attempts", "INTEGER DEFAULT 0"),
    ):
        if name not in columns:
            conn.execute(f"ALTER TABLE transcription_jobs ADD COLUMN {name} {decl}")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_jobs_callback_pending ON transcription_jobs(callback_status)"
        " WHERE callback_status = 'pending'"
    )


def _v7_search_any_language(conn: Any) -> None:
    # unicode61 cuts Thai at its vowel and tone marks (and cannot split unspaced words at all):
    # a trigram index finds any text of three characters or more inside any word.
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS segments_trigram USING fts5("
        "text, content='transcription_segments', content_rowid='id', tokenize='trigram')"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS segments_trigram_insert AFTER INSERT ON transcription_segments"
        " BEGIN INSERT INTO segments_trigram(rowid, text) VALUES (new.id, new.text); END"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS segments_trigram_delete AFTER DELETE ON transcription_segments"
        " BEGIN INSERT INTO segments_trigram(segments_trigram, rowid, text)"
        " VALUES ('delete', old.id, old.text); END"
    )
    conn.execute("INSERT INTO segments_trigram(segments_trigram) VALUES ('rebuild')")
    conn.execute("DROP TRIGGER IF EXISTS segments_fts_insert")
    conn.execute("DROP TRIGGER IF EXISTS segments_fts_delete")
    conn.execute("DROP TABLE IF EXISTS segments_fts")


def _v8_earlier_transcripts(conn: Any) -> None:
    # The earlier app kept a job's text in its own `transcript` column (and its length in
    # `duration`, its end as text in `completed_at`). Those stay as they are; their job gets
    # the text as one untimed segment, and its length and end in our columns, so that History,
    # the exports, search and Statistics see them.
    if "timed" not in _columns(conn, "transcription_segments"):
        conn.execute("ALTER TABLE transcription_segments ADD COLUMN timed INTEGER NOT NULL DEFAULT 1")
    columns = _columns(conn, "transcription_jobs")
    if "duration" in columns:
        conn.execute(
            "UPDATE transcription_jobs SET media_duration = CAST(duration AS REAL)"
            " WHERE media_duration IS NULL AND typeof(duration) IN ('real', 'integer', 'text')"
            " AND CAST(duration AS REAL) > 0"
        )
    if "completed_at" in columns:
        conn.execute(
            "UPDATE transcription_jobs SET finished_at = CAST(strftime('%s', completed_at) AS REAL)"
            " WHERE finished_at IS NULL AND strftime('%s', completed_at) IS NOT NULL"
        )
    if "transcript" in columns:
        conn.execute(
            "INSERT INTO transcription_segments (job_id, start, end, text, timed)"
            " SELECT id, 0, coalesce(media_duration, 0), trim(transcript), 0 FROM transcription_jobs j"
            " WHERE typeof(transcript) = 'text' AND trim(transcript) != ''"
            " AND NOT EXISTS (SELECT 1 FROM transcription_segments s WHERE s.job_id = j.id)"
            " ORDER BY id"
        )


def _v9_hosts(conn: Any) -> None:
    # Several machines may run jobs (on PostgreSQL; SQLite has one): a job records the machine
    # and the attempt that run it, and the machines are listed with their slots and last contact.
    columns = _columns(conn, "transcription_jobs")
    for name, decl in (("host", "TEXT"), ("host_boot_id", "TEXT"), ("attempt", "INTEGER DEFAULT 0")):
        if name not in columns:
            conn.execute(f"ALTER TABLE transcription_jobs ADD COLUMN {name} {decl}")
    conn.execute("UPDATE transcription_jobs SET attempt = CASE WHEN started_at IS NULL THEN 0 ELSE 1 END")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS hosts (name TEXT PRIMARY KEY, boot_id TEXT NOT NULL,"
        " slots INTEGER NOT NULL, version TEXT, started_at REAL, last_seen REAL)"
    )


def _v10_media_and_logs(conn: Any) -> None:
    # A job's media hash and the token of its running attempt, for agents that fetch the media
    # from the central service, and the job's log copied as it grows (a PostgreSQL store's, for
    # machines apart; kept here too, so that both stores are one).
    columns = _columns(conn, "transcription_jobs")
    for name in ("media_sha256", "media_token"):
        if name not in columns:
            conn.execute(f"ALTER TABLE transcription_jobs ADD COLUMN {name} TEXT")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS job_log_chunks (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, text TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_log_chunks_job ON job_log_chunks (job_id, id)")


def _v11_messages_and_unclaimed(conn: Any) -> None:
    # Every sentence a user reads is a code with parameters (ttservice/messages): a stored one
    # keeps them beside its English sentence, so that each reader sees it in their language.
    # A download nobody has taken yet is "unclaimed" (it was "upload", an upload's word).
    for table, names in (
        ("transcription_jobs", ("error_detail", "stop_detail")),
        ("model_downloads", ("error_detail",)),
    ):
        columns = _columns(conn, table)
        for name in names:
            if name not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} TEXT")
    conn.execute("UPDATE model_downloads SET runner = 'unclaimed' WHERE runner = 'upload'")


def _v12_memory(conn: Any) -> None:
    # A job's measured peak memory, and what it was told to know (a batch too large for the
    # memory limit, made smaller): JSON, a list of messages.
    columns = _columns(conn, "transcription_jobs")
    for name, kind in (("peak_memory_mb", "REAL"), ("warnings", "TEXT")):
        if name not in columns:
            conn.execute(f"ALTER TABLE transcription_jobs ADD COLUMN {name} {kind}")


def _v13_conversion(conn: Any) -> None:
    # A download that converts a Transformers model: its phase (downloading, converting), the
    # conversion's steps, and the memory the conversion needs (counted against the limit).
    columns = _columns(conn, "model_downloads")
    for name, kind in (
        ("phase", "TEXT"),
        ("steps_done", "INTEGER"),
        ("steps_total", "INTEGER"),
        ("memory_mb", "REAL"),
    ):
        if name not in columns:
            conn.execute(f"ALTER TABLE model_downloads ADD COLUMN {name} {kind}")


def _v14_corrections(conn: Any) -> None:
    # A segment's speaker; what the engine wrote, kept by the first correction (JSON); whether a
    # person set the speaker (labelling again leaves it). Every correction is a revision.
    columns = _columns(conn, "transcription_segments")
    for name, kind in (
        ("speaker", "TEXT"),
        ("original", "TEXT"),
        ("edited_speaker", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if name not in columns:
            conn.execute(f"ALTER TABLE transcription_segments ADD COLUMN {name} {kind}")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS segment_edits (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          job_id INTEGER NOT NULL REFERENCES transcription_jobs(id) ON DELETE CASCADE,
          segment_id INTEGER NOT NULL REFERENCES transcription_segments(id) ON DELETE CASCADE,
          text TEXT NOT NULL,
          speaker TEXT,
          restored INTEGER NOT NULL DEFAULT 0,
          created_at REAL NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_segment_edits_segment ON segment_edits(segment_id, id)")
    # The names given to a job's speakers: segments keep their label (SPEAKER_1), readers see the name.
    conn.execute(
        """CREATE TABLE IF NOT EXISTS speaker_names (
          job_id INTEGER NOT NULL REFERENCES transcription_jobs(id) ON DELETE CASCADE,
          label TEXT NOT NULL,
          name TEXT NOT NULL,
          PRIMARY KEY (job_id, label)
        )"""
    )
    # Search reads the corrected text: the trigram index follows an edit.
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS segments_trigram_update AFTER UPDATE OF text"
        " ON transcription_segments BEGIN INSERT INTO segments_trigram(segments_trigram, rowid, text)"
        " VALUES ('delete', old.id, old.text);"
        " INSERT INTO segments_trigram(rowid, text) VALUES (new.id, new.text); END"
    )


def _v15_engine(conn: Any) -> None:
    # The engine a job's latest run used (faster-whisper, whisper.cpp), recorded as its model loads.
    if "engine" not in _columns(conn, "transcription_jobs"):
        conn.execute("ALTER TABLE transcription_jobs ADD COLUMN engine TEXT")


MIGRATIONS: list[Callable[[Any], None]] = [
    _v1_jobs_and_segments,
    _v2_leases_and_search,
    _v3_resume,
    _v4_lighter_heartbeat,
    _v5_models,
    _v6_api,
    _v7_search_any_language,
    _v8_earlier_transcripts,
    _v9_hosts,
    _v10_media_and_logs,
    _v11_messages_and_unclaimed,
    _v12_memory,
    _v13_conversion,
    _v14_corrections,
    _v15_engine,
]
LATEST_VERSION = len(MIGRATIONS)


def current_version(conn: Any) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def has_user_data(conn: Any) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    ).fetchone()
    return row[0] > 0


def backup_to(conn: Any, connect: Callable[[Path], Any], dest: Path) -> Path:
    """Copy the live database with SQLite's online backup API (safe under WAL)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = connect(dest)
    try:
        conn.backup(target)
    finally:
        target.close()
    return dest


def timestamped(backup_dir: Path, label: str, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time()))
    path = backup_dir / f"transcriptor-{stamp}-{label}.db"
    n = 1
    while path.exists():
        n += 1
        path = backup_dir / f"transcriptor-{stamp}-{label}-{n}.db"
    return path


def migrate(conn: Any, connect: Callable[[Path], Any], db_path: Path, backup_dir: Path) -> list[Path]:
    """Bring the schema to LATEST_VERSION; return the backups written (none if up to date)."""
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise MigrationError("store.newer_schema_rollback", version=version, latest=LATEST_VERSION)
    if version == LATEST_VERSION:
        return []
    backups: list[Path] = []
    if has_user_data(conn):
        backups.append(backup_to(conn, connect, db_path.with_name(db_path.name + ".backup")))
        backups.append(backup_to(conn, connect, timestamped(backup_dir, f"v{version}-pre-migration")))
    for step in range(version, LATEST_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
    return backups


def newest_pre_migration_backup(backup_dir: Path) -> Path | None:
    candidates = sorted(backup_dir.glob("transcriptor-*-pre-migration*.db"), key=_mtime)
    return candidates[-1] if candidates else None


def _mtime(path: Path) -> float:
    return path.stat().st_mtime
