"""Item 12 of bench/run.py: transcript search over 10,000 jobs and 1,000,000 segments of mixed
Thai and English, as History runs it (the count and the first page of 20, `page_of_jobs`).

Figures: p50 and p95 for a long term found in every job and a rare one (the trigram index), a
two-character Thai term in every job and a rare one (LIKE over each job's segments, newest job
first), and a mixed Thai and English query (the index, then LIKE among its matches). The text is
70% Thai words, 30% English, 6-14 words a segment.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from ttservice.jobs import JobStatus, TranscribeOptions, open_store

JOBS, SEGMENTS_PER_JOB = 10_000, 100
ROUNDS, QUERIES_PER_ROUND = 5, 10
THAI = (
    "การประชุม งบประมาณ ประจำปี คณะกรรมการ อนุมัติ โครงการ รายงาน ผลการดำเนินงาน ฝ่ายขาย ลูกค้า"
    " สัปดาห์หน้า เริ่ม เวลา ห้องประชุม ชั้นห้า ข้อเสนอ แผนงาน การตลาด ต้นทุน รายได้ เป้าหมาย ทีมงาน"
    " ปัญหา แก้ไข ติดตาม สรุป ครับ ค่ะ นะ ว่า ที่ และ ของ ใน ให้ ได้ จะ มี ไม่"
).split()
ENGLISH = (
    "meeting budget quarter review sales customer project report deadline team plan market cost revenue"
    " target issue follow summary next week start time room floor proposal the and of to in for is that"
).split()
# In one segment of a thousand each: what a search is usually for.
RARE, RARE_SHORT, RARE_SHARE = "นวัตกรรม", "ปู", 0.001
QUERIES = {
    "long term, in every job (งบประมาณ)": "งบประมาณ",
    "long term, rare (นวัตกรรม)": RARE,
    "2-character Thai, in every job (งบ)": "งบ",
    "2-character Thai, rare (ปู)": RARE_SHORT,
    "mixed Thai and English (ประชุม budget)": "ประชุม budget",
}


def sentence(rng: random.Random) -> str:
    words = [rng.choice(THAI if rng.random() < 0.7 else ENGLISH) for _ in range(rng.randint(6, 14))]
    for rare in (RARE, RARE_SHORT):
        if rng.random() < RARE_SHARE:
            words.insert(rng.randrange(len(words)), rare)
    return "".join(w if "\u0e00" <= w[0] <= "\u0e7f" else f" {w} " for w in words).strip()


def build(data_dir: Path, database_url: str = "") -> object:
    from ttservice.config import Settings

    store = open_store(Settings.from_env({}, data_dir=data_dir, database_url=database_url))
    rng = random.Random(12)
    options = TranscribeOptions().to_json()
    now = time.time()
    with store.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO transcription_jobs (id, original_filename, media_path, status, model, options_json,"
            " runner, created_at, finished_at, progress) VALUES (?, ?, ?, ?, 'base', ?, 'service', ?, ?, 1)",
            [
                (i, f"meeting{i}.m4a", f"/m/{i}.m4a", JobStatus.COMPLETED.value, options, now - i, now - i)
                for i in range(1, JOBS + 1)
            ],
        )
    for first in range(1, JOBS + 1, 500):  # in transactions of 50,000 segments
        with store.db.transaction() as conn:
            conn.executemany(
                'INSERT INTO transcription_segments (job_id, start, "end", text) VALUES (?, ?, ?, ?)',
                [
                    (job_id, s * 5.0, s * 5.0 + 5.0, sentence(rng))
                    for job_id in range(first, min(first + 500, JOBS + 1))
                    for s in range(SEGMENTS_PER_JOB)
                ],
            )
    if database_url:  # what autovacuum would do soon after such a load: the planner's statistics
        store.db.execute("ANALYZE")
    return store


def search(figures, work: Path, runs: int, database_url: str = "", item: str = "12 search") -> None:
    started = time.perf_counter()
    store = build(work / "search", database_url)
    segments = store.db.read("SELECT count(*) FROM transcription_segments")[0][0]
    figures.add(
        item,
        f"build {JOBS:,} jobs, {segments:,} segments (indexed)",
        [time.perf_counter() - started],
        "s",
    )
    for name, query in QUERIES.items():
        p50s, p95s = [], []
        for _ in range(max(runs, ROUNDS)):
            times = []
            for _ in range(QUERIES_PER_ROUND):
                start = time.perf_counter()
                store.page_of_jobs(search=query, limit=20)
                times.append((time.perf_counter() - start) * 1000)
            p50s.append(statistics.median(times))
            p95s.append(statistics.quantiles(times, n=20)[18])
        found = store.page_of_jobs(search=query)[0]
        figures.add(item, f"{name}: p50, {found:,} jobs found", p50s, "ms")
        figures.add(item, f"{name}: p95", p95s, "ms")
    store.close()
