import gzip
import os
import subprocess
import sys
import time

from ttservice.jobs import logs


def test_tail_reads_last_lines_of_large_file(tmp_path):
    path = tmp_path / "job_1.log"
    path.write_text("".join(f"line {i}\n" for i in range(200_000)))
    assert logs.tail(path, 3) == ["line 199997", "line 199998", "line 199999"]
    assert logs.tail(path, 0) == []
    assert logs.tail(tmp_path / "missing.log", 5) == []
    assert logs.tail(None, 5) == []


def test_rotation_gzips_parts_and_tail_spans_them(tmp_path):
    path = tmp_path / "job_7.log"
    handler = logs.JobLogHandler(path, max_bytes=2000, backup_count=3)
    import logging

    logger = logging.getLogger("rotation-test")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for i in range(300):
        logger.info("message %03d", i)
    handler.close()
    parts = logs.rotated_parts(path)
    assert parts[0] == path
    assert [p.name for p in parts[1:]] == ["job_7.log.1.gz", "job_7.log.2.gz", "job_7.log.3.gz"]
    assert path.stat().st_size <= 2000
    with gzip.open(parts[1], "rt") as f:
        assert "message" in f.read()
    # ask for more lines than the current file holds: the tail continues into .1.gz, in order
    current = len(path.read_text().splitlines())
    tail = logs.tail(path, current + 5)
    numbers = [int(line.rsplit(" ", 1)[1]) for line in tail]
    assert numbers == list(range(300 - len(numbers), 300))
    assert len(numbers) == current + 5


def test_worker_stdout_follows_rotation(tmp_path):
    """Output written to fd 1/2 (as native libraries do) lands in the current file after rotation."""
    path = tmp_path / "job_3.log"
    script = (
        "import logging, os, sys\n"
        "from ttservice.jobs.logs import JobLogHandler\n"
        f"h = JobLogHandler({str(path)!r}, 500, 2, capture_std=True)\n"
        "logging.basicConfig(level=logging.INFO, handlers=[h], force=True)\n"
        "for i in range(40): logging.info('filler %d', i)\n"
        "os.write(1, b'native stdout after rotation\\n')\n"
        "os.write(2, b'native stderr after rotation\\n')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    text = path.read_text()
    assert "native stdout after rotation" in text and "native stderr after rotation" in text
    assert (tmp_path / "job_3.log.1.gz").exists()


def test_purge_deletes_old_logs_but_keeps_active(tmp_path):
    old, active, fresh = tmp_path / "job_1.log", tmp_path / "job_2.log", tmp_path / "job_3.log"
    for p in (old, active, fresh, tmp_path / "job_1.log.1.gz"):
        p.write_text("x")
    ten_days_ago = time.time() - 10 * 86400
    for p in (old, active, tmp_path / "job_1.log.1.gz"):
        os.utime(p, (ten_days_ago, ten_days_ago))
    removed = logs.purge_old_logs(tmp_path, 7, keep={active})
    assert sorted(p.name for p in removed) == ["job_1.log", "job_1.log.1.gz"]
    assert active.exists() and fresh.exists()


def test_follow_yields_new_lines_across_rotation(tmp_path):
    path = tmp_path / "job_9.log"
    path.write_text("old line\n")
    out = []
    lines = logs.follow(path, keep_going=lambda: len(out) < 3, poll=0.01)
    with open(path, "a") as f:
        f.write("first\n")
    out.append(next(lines))
    path.rename(tmp_path / "job_9.log.1")
    path.write_text("second\nthird\n")
    out.append(next(lines))
    out.append(next(lines))
    assert out == ["first", "second", "third"]


class Away(Exception):
    """The store's error while the database is away."""


def test_the_shipper_copies_every_new_line_once_across_rotations_and_failures(tmp_path):
    import logging

    path = tmp_path / "job_8.log"
    path.write_text("an earlier run's line\n")
    handler = logs.JobLogHandler(path, max_bytes=2000, backup_count=50)
    logger = logging.getLogger("shipper-test")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    sent, failing = [], []

    def send(text):
        if failing:
            raise Away("the database is away")
        sent.append(text)

    shipper = logs.LogShipper(path, send, limit=10**6, host="alpha")
    for i in range(300):  # several rotations between two copies, as a heartbeat apart
        logger.info("message %03d", i)
        if i % 40 == 39:
            failing[:] = [True] if i == 79 else []  # one copy fails: its lines go with the next
            try:
                shipper.ship()
            except Away:
                pass
    with open(path, "a") as f:
        f.write("a partial line")
    shipper.ship()
    assert not "".join(sent).endswith("a partial line")  # only whole lines, until the last copy
    shipper.ship(final=True)
    lines = "".join(sent).splitlines()
    assert [int(line.rsplit(" ", 1)[1]) for line in lines[:-1]] == list(range(300))
    assert lines[-1] == "a partial line" and "an earlier run's line" not in lines
    handler.close()
    shipper.close()


def test_the_shipper_stops_at_its_limit_and_says_where_the_rest_is(tmp_path):
    path = tmp_path / "job_9.log"
    path.write_text("")
    sent = []
    shipper = logs.LogShipper(path, sent.append, limit=100, host="alpha")
    with open(path, "a") as f:
        f.writelines(f"line {i:02d} of the log\n" for i in range(20))
    shipper.ship()
    shipper.ship(final=True)
    text = "".join(sent)
    assert len(text.encode()) < 200 and text.startswith("line 00 of the log\n")
    assert text.splitlines()[-1] == "(the rest of this run's log is in job_9.log on alpha)"
    shipper.close()
