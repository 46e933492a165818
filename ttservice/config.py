"""Every setting TTService reads: each declared once, as a field of `Settings` with its type,
default and meaning; its environment variable is its name in capitals after `TTSERVICE_`.

From that one declaration come the settings object (`Settings.from_env()`, read when called, so a
test or a second service can run with its own data directory without touching global state),
the environment handed to workers, `ttservice --help`, and `docs/settings.md`
(`python -m ttservice.config > docs/settings.md`; a test fails when the file is stale).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import TTServiceError

if TYPE_CHECKING:
    from .transcription.subtitles import CueRules

ENV_PREFIX = "TTSERVICE_"
# Not a setting: a foreground manager tells its worker which PID it must end with.
WORKER_PARENT_ENV = ENV_PREFIX + "WORKER_PARENT"
# Not a setting: an agent tells its workers the central service's API to fetch their media from.
MEDIA_FROM_ENV = ENV_PREFIX + "WORKER_MEDIA_FROM"
# The warm worker: started with STANDBY, it writes to the descriptor READY_FD_ENV names (and
# STANDBY_READY to its log) once it waits for a job id.
STANDBY, STANDBY_READY = "--standby", "Standby worker ready"
# A worker started ahead of its job by `ttservice transcribe`: as STANDBY, but it loads no model.
AHEAD = "--ahead"
READY_FD_ENV = ENV_PREFIX + "WORKER_READY_FD"
# Orphan checks in each orphan timeout: a job silent for longer is found within 1.5 timeouts.
ORPHAN_CHECKS_PER_TIMEOUT = 2


def setting(default: object, meaning: str, secret: bool = False) -> Any:
    """A field of `Settings`: its default and what it means (`secret`: never handed to workers)."""
    return field(default=default, metadata={"meaning": meaning, "secret": secret})


def _as_bool(value: str) -> bool:
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


def as_text(value: object) -> str:
    """A value as its environment variable spells it: booleans as 1 and 0, relative paths with ./"""
    if isinstance(value, Path) and not value.is_absolute():
        return f"./{value}"
    return str(int(value)) if isinstance(value, bool) else str(value)


PARSERS: dict[type, Callable[[str], object]] = {
    Path: lambda raw: Path(raw).expanduser().resolve(),
    bool: _as_bool,
    int: int,
    float: float,
    str: str,
}


DEFAULT_BATCH = 8  # clips of speech decoded at once by default (docs/decisions.md)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = setting(Path("./data"), "Where the database, logs, uploads and backups live.")
    database_url: str = setting(
        "",
        "postgresql://... puts jobs and transcripts on that PostgreSQL database (for several machines);"
        " empty: the SQLite file in the data directory.",
    )
    host_name: str = setting(
        "",
        "The name this machine's jobs are recorded under (History, `ttservice hosts`); empty: its hostname.",
    )
    auto_resume: bool = setting(
        True,
        "1: a service job whose machine went silent is queued again, to continue from its last"
        " segment on a machine that answers; 0: it stays interrupted.",
    )
    api_url: str = setting(
        "",
        "An agent's way to the central service's API (http://central:8000), from which its jobs'"
        " media is fetched; empty: the media is read where the job records it.",
    )
    shared_media: bool = setting(
        False,
        "1: every machine sees the upload folder at the same path, so an agent reads a job's media"
        " there instead of fetching it from TTSERVICE_API_URL.",
    )
    heartbeat_interval: float = setting(5, "Seconds between a worker's heartbeats.")
    orphan_timeout: float = setting(
        300,
        "Seconds without a heartbeat after which a job is orphaned; running managers look for"
        " such jobs every half of it.",
    )
    cleanup_interval: float = setting(
        600,
        "Seconds between a running manager's housekeeping: logs past their retention, cached"
        " media nobody used, the disk reserve.",
    )
    kill_grace: float = setting(5, "Seconds between SIGTERM and SIGKILL when stopping a job.")
    max_concurrent_jobs: int = setting(2, "Jobs that may run at once; more wait as queued.")
    use_process_tracking: bool = setting(True, "0 disables PID tracking (the emergency switch).")
    log_max_bytes: int = setting(10 * 1024 * 1024, "Size at which a job log is rotated.")
    log_backup_count: int = setting(5, "Rotated, gzip-compressed parts kept per job log.")
    log_retention_days: float = setting(7, "Job logs older than this are deleted by the housekeeping.")
    max_upload_mb: float = setting(2048, "Largest media file accepted, in MB.")
    model: str = setting("tiny.en", "Default model: a name or a local CTranslate2 directory.")
    compute_type: str = setting(
        "auto",
        "CTranslate2 compute type (float32, int8, float16, ...); auto: float16 on CUDA, int8 on the CPU.",
    )
    beam_size: int = setting(
        5,
        "Beam size for decoding: 5 (Whisper's own) was the most accurate on real speech; 1 (greedy)"
        " takes about a quarter less time. A job whose beams do not fit in the memory limit decodes"
        " with one.",
    )
    vad: bool = setting(True, "1 to skip silence with the Silero VAD filter.")
    cpu_threads: int = setting(0, "CPU threads per worker; 0 lets CTranslate2 choose.")
    worker_nice: int = setting(
        10,
        "Niceness of workers and downloads (0-19; higher yields the CPU sooner), so that the user's own"
        " programs and the web app stay responsive while jobs run.",
    )
    batch_size: int = setting(
        DEFAULT_BATCH,
        "N > 0 decodes N clips of speech at a time (the engine's batched pipeline: on real speech the"
        " fastest, and the most accurate on recordings of several voices at different levels; on the"
        " CPU at most two per thread of the job, since more were slower, as two batches side by"
        " side); 0 decodes window by window, each primed with the text before it.",
    )
    engine: str = setting(
        "auto",
        "Speech-to-text engine: faster-whisper, whisper.cpp, or auto (whisper.cpp on Apple Silicon,"
        " where it runs on the GPU with Metal; faster-whisper elsewhere, on CUDA when there is one).",
    )
    memory_limit_mb: float = setting(
        0,
        "Memory that running jobs and the warm worker may take together, in MB; 0: half of this"
        " machine's memory. A job waits until its model's estimate fits; one that never fits is refused,"
        " and one that takes more while it runs is stopped.",
    )
    stall_timeout: float = setting(900, "Seconds without progress after which a job is shown as stalled.")
    warm_worker: bool = setting(
        True,
        "1: the service keeps a worker started ahead (imports done, default model loaded, ~240 MB)"
        " so that a queued job starts at once, and `ttservice transcribe` starts its worker before"
        " it checks the request.",
    )
    warm_idle_seconds: float = setting(
        300,
        "Seconds a warm worker waits unused before it exits and gives its memory back; the next job"
        " brings one back.",
    )
    subtitle_line_chars: int = setting(42, "Longest subtitle line (SRT, VTT), in characters as shown.")
    subtitle_lines: int = setting(2, "Lines a subtitle cue may have.")
    subtitle_cue_seconds: float = setting(7, "Longest time a subtitle cue stays on screen, in seconds.")
    device: str = setting("auto", "Where jobs run: auto (CUDA when there is a usable GPU), cpu or cuda.")
    device_index: int = setting(0, "Which CUDA device, when there are several.")
    api_key: str = setting(
        "",
        "API keys, comma-separated; when set, every API endpoint but /health needs"
        " `Authorization: Bearer KEY`.",
        secret=True,
    )
    api_callbacks: bool = setting(
        False, "1 lets an API client name a callback_url that TTService POSTs the finished job to."
    )

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from TTSERVICE_* variables, then apply keyword overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for declared in SETTINGS:
            raw = environ.get(declared.env, declared.default)
            try:
                values[declared.name] = PARSERS[declared.kind](raw)
            except ValueError:
                raise TTServiceError("settings.invalid", variable=declared.env, value=raw) from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "transcriptor.db"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def media_cache_dir(self) -> Path:
        """Where an agent keeps the media it fetched, by content hash."""
        return self.data_dir / "cache" / "media"

    @property
    def backup_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def orphan_check_interval(self) -> float:
        """Seconds between a running manager's looks for jobs without a heartbeat."""
        return self.orphan_timeout / ORPHAN_CHECKS_PER_TIMEOUT

    @property
    def subtitles(self) -> CueRules:
        """The subtitle rules these settings give."""
        from .transcription.subtitles import CueRules

        return CueRules.from_settings(self)

    @property
    def api_keys(self) -> list[str]:
        return [k.strip() for k in self.api_key.split(",") if k.strip()]

    def environment(self, secrets: bool = False) -> dict[str, str]:
        """These settings as TTSERVICE_* variables (the secret ones only with `secrets`)."""
        return {s.env: as_text(getattr(self, s.name)) for s in SETTINGS if secrets or not s.secret}


@dataclass(frozen=True)
class Setting:
    """One declared setting, as help and docs show it."""

    name: str
    kind: type
    default: str  # as its environment variable spells it
    meaning: str
    secret: bool

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


@cache
def _declared() -> tuple[Setting, ...]:
    kinds = typing.get_type_hints(Settings)
    return tuple(
        Setting(f.name, kinds[f.name], as_text(f.default), f.metadata["meaning"], f.metadata["secret"])
        for f in fields(Settings)
    )


SETTINGS: tuple[Setting, ...] = _declared()


def settings_help() -> str:
    """The settings table of `ttservice --help`."""
    width = max(len(s.env) for s in SETTINGS)
    return "\n".join(f"{s.env:<{width}}  {s.meaning} (default {s.default or 'none'})" for s in SETTINGS)


def settings_markdown() -> str:
    """docs/settings.md: every setting, then the variables read before the settings are."""
    from .platform import PORTABLE_ENV, PORTABLE_MEANING

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        f"| `{s.env}` | {f'`{s.default}`' if s.default else '(none)'} | {cell(s.meaning)} |" for s in SETTINGS
    ]
    return "\n".join(
        [
            "# Settings",
            "",
            "<!-- Made by `python -m ttservice.config > docs/settings.md` from ttservice/config.py;"
            " a test fails when it is stale. -->",
            "",
            "TTService reads its settings from the environment, each a `TTSERVICE_*` variable; the same",
            "list is at the end of `ttservice --help`. A service hands its own settings to the workers it",
            "starts, except the API keys.",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
            *rows,
            "",
            "Read before the settings, by the code that asks what the system offers:",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
            f"| `{PORTABLE_ENV}` | `0` | {cell(PORTABLE_MEANING)} |",
            "",
        ]
    )


if __name__ == "__main__":
    print(settings_markdown(), end="")
