"""What is the SQLite store's own: WAL and its indexes, waiting for a lock held elsewhere; the
engine options a job is given. The contract both stores keep is in test_store_contract.py."""

import sqlite3
import threading

import pytest

from ttservice.exceptions import StoreError
from ttservice.jobs import TranscribeOptions


def test_database_is_wal_with_indexes(store, settings):
    assert store.db_path == settings.data_dir / "transcriptor.db"
    conn = sqlite3.connect(store.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(transcription_jobs)")}
    assert {"idx_jobs_status_id", "idx_jobs_process_id"} <= indexes
    assert "idx_jobs_status_heartbeat" not in indexes  # a heartbeat writes one page, not two
    cols = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(transcription_jobs)")}
    assert cols["process_id"] == "INTEGER"
    assert cols["log_file_path"] == "TEXT"
    assert cols["last_heartbeat"] == "TIMESTAMP"
    for query in (
        "SELECT * FROM transcription_jobs WHERE status = 'processing' ORDER BY last_heartbeat",
        "SELECT * FROM transcription_jobs WHERE status = 'processing'"
        " AND (last_heartbeat IS NULL OR last_heartbeat < 5)",
    ):
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "USING INDEX idx_jobs_status_id" in plan  # indexed, never a table scan


def test_writes_wait_for_a_lock_held_elsewhere_and_say_so_when_it_never_frees(store, make_job, monkeypatch):
    job_id = make_job()
    store.claim(job_id, 1)
    other = sqlite3.connect(store.db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, other.rollback).start()
    assert store.list_jobs() != []  # readers never wait under WAL
    assert store.heartbeat(job_id)  # waited for the other writer, then wrote
    other.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr("ttservice.jobs.sqlite.connection.LOCK_RETRY_SECONDS", 0.2)
    with pytest.raises(StoreError, match="stayed locked by another program"):
        store.heartbeat(job_id)
    other.rollback()
    assert store.heartbeat(job_id)


def test_options_from_settings_keep_unchosen_defaults(settings):
    from dataclasses import replace

    tuned = replace(settings, beam_size=3, vad=False, model="base")
    options = TranscribeOptions.from_settings(tuned, model=None, language="th", word_timestamps=True)
    assert (options.model, options.beam_size, options.vad) == ("base", 3, False)
    assert (options.language, options.word_timestamps, options.task) == ("th", True, "transcribe")


def test_by_default_every_model_decodes_in_batches_of_eight(settings):
    """TTSERVICE_BATCH_SIZE=8, the default, for every model and device (docs/decisions.md); a batch
    size set is every model's, 0 window by window, -1 the default."""
    from dataclasses import replace

    def batch(chosen, **choices) -> int:
        return TranscribeOptions.from_settings(chosen, **choices).batch_size

    cpu = replace(settings, device="cpu")
    assert [batch(cpu, model=m) for m in ("tiny.en", "base", "large-v3")] == [8, 8, 8]
    assert batch(cpu, model="tiny.en", device="cuda") == 8
    assert batch(replace(cpu, batch_size=4), model="tiny.en") == 4
    assert batch(replace(cpu, batch_size=0), model="base") == 0
    assert batch(replace(cpu, batch_size=-1), model="tiny.en") == 8  # the default's name until 2026-12-06
