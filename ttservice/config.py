"""Every setting TTService reads, its environment variable, default and meaning.

Settings are read from the environment when `Settings.from_env()` is called, so a
test (or a second service) can run with its own data directory without touching
global state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transcription.subtitles import CueRules

ENV_PREFIX = "TTSERVICE_"
# Not a setting: a foreground manager tells its worker which PID it must end with.
WORKER_PARENT_ENV = ENV_PREFIX + "WORKER_PARENT"
# Not a setting: an agent tells its workers the central service's API to fetch their media from.
MEDIA_FROM_ENV = ENV_PREFIX + "WORKER_MEDIA_FROM"
# The warm worker: started with STANDBY, it prints STANDBY_READY once it waits for a job id.
STANDBY, STANDBY_READY = "--standby", "Standby worker ready"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    meaning: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./data", "Where the database, logs, uploads and backups live."),
    Setting(
        "database_url",
        "",
        "postgresql://... puts jobs and transcripts on that PostgreSQL database (for several machines);"
        " empty: the SQLite file in the data directory.",
    ),
    Setting(
        "host_name",
        "",
        "The name this machine's jobs are recorded under (History, `ttservice hosts`); empty: its hostname.",
    ),
    Setting(
        "auto_resume",
        "1",
        "1: a service job whose machine went silent is queued again, to continue from its last"
        " segment on a machine that answers; 0: it stays interrupted.",
    ),
    Setting(
        "api_url",
        "",
        "An agent's way to the central service's API (http://central:8000), from which its jobs'"
        " media is fetched; empty: the media is read where the job records it.",
    ),
    Setting(
        "shared_media",
        "0",
        "1: every machine sees the upload folder at the same path, so an agent reads a job's media"
        " there instead of fetching it from TTSERVICE_API_URL.",
    ),
    Setting("heartbeat_interval", "5", "Seconds between a worker's heartbeats."),
    Setting("orphan_timeout", "300", "Seconds without a heartbeat after which a job is orphaned."),
    Setting("cleanup_interval", "600", "Seconds between orphan sweeps of a running manager."),
    Setting("kill_grace", "5", "Seconds between SIGTERM and SIGKILL when stopping a job."),
    Setting("max_concurrent_jobs", "2", "Jobs that may run at once; more wait as queued."),
    Setting("use_process_tracking", "1", "0 disables PID tracking (the emergency switch)."),
    Setting("log_max_bytes", str(10 * 1024 * 1024), "Size at which a job log is rotated."),
    Setting("log_backup_count", "5", "Rotated, gzip-compressed parts kept per job log."),
    Setting("log_retention_days", "7", "Job logs older than this are deleted by the sweep."),
    Setting("max_upload_mb", "2048", "Largest media file accepted, in MB."),
    Setting("model", "tiny.en", "Default model: a name or a local CTranslate2 directory."),
    Setting(
        "compute_type",
        "auto",
        "CTranslate2 compute type (float32, int8, float16, ...); auto: float16 on CUDA, float32 on the CPU.",
    ),
    Setting("beam_size", "1", "Beam size for decoding (1: greedy)."),
    Setting("vad", "1", "1 to skip silence with the Silero VAD filter."),
    Setting("cpu_threads", "0", "CPU threads per worker; 0 lets CTranslate2 choose."),
    Setting(
        "batch_size", "0", "0 decodes window by window (best WER); N > 0 decodes N clips at a time (faster)."
    ),
    Setting("stall_timeout", "900", "Seconds without progress after which a job is shown as stalled."),
    Setting(
        "warm_worker",
        "1",
        "1: the service keeps a worker started ahead (imports done, default model loaded, ~240 MB)"
        " so that a queued job starts at once.",
    ),
    Setting(
        "warm_idle_seconds",
        "300",
        "Seconds a warm worker waits unused before it exits and gives its memory back; the next job"
        " brings one back.",
    ),
    Setting("subtitle_line_chars", "42", "Longest subtitle line (SRT, VTT), in characters as shown."),
    Setting("subtitle_lines", "2", "Lines a subtitle cue may have."),
    Setting("subtitle_cue_seconds", "7", "Longest time a subtitle cue stays on screen, in seconds."),
    Setting("device", "auto", "Where jobs run: auto (CUDA when there is a usable GPU), cpu or cuda."),
    Setting("device_index", "0", "Which CUDA device, when there are several."),
    Setting(
        "api_key",
        "",
        "API keys, comma-separated; when set, every API endpoint but /health needs"
        " `Authorization: Bearer KEY`.",
    ),
    Setting(
        "api_callbacks",
        "0",
        "1 lets an API client name a callback_url that TTService POSTs the finished job to.",
    ),
)
SECRET_SETTINGS = frozenset({"api_key"})  # never handed to workers


def _as_bool(value: str) -> bool:
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    host_name: str
    auto_resume: bool
    api_url: str
    shared_media: bool
    heartbeat_interval: float
    orphan_timeout: float
    cleanup_interval: float
    kill_grace: float
    max_concurrent_jobs: int
    use_process_tracking: bool
    log_max_bytes: int
    log_backup_count: int
    log_retention_days: float
    max_upload_mb: float
    model: str
    compute_type: str
    beam_size: int
    vad: bool
    cpu_threads: int
    batch_size: int
    stall_timeout: float
    warm_worker: bool
    warm_idle_seconds: float
    subtitle_line_chars: int
    subtitle_lines: int
    subtitle_cue_seconds: float
    device: str
    device_index: int
    api_key: str
    api_callbacks: bool

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from TTSERVICE_* variables, then apply keyword overrides."""
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env, setting.default)
            kind = types[setting.name]
            try:
                if kind == "Path":
                    values[setting.name] = Path(raw).expanduser().resolve()
                elif kind == "bool":
                    values[setting.name] = _as_bool(raw)
                elif kind == "int":
                    values[setting.name] = int(raw)
                elif kind == "float":
                    values[setting.name] = float(raw)
                else:
                    values[setting.name] = raw
            except ValueError:
                raise ValueError(f"{setting.env}={raw!r} is not a valid value.") from None
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
    def subtitles(self) -> CueRules:
        """The subtitle rules these settings give."""
        from .transcription.subtitles import CueRules

        return CueRules.from_settings(self)

    @property
    def api_keys(self) -> list[str]:
        return [k.strip() for k in self.api_key.split(",") if k.strip()]


def settings_help() -> str:
    """The settings table shown by `ttservice --help` and the README."""
    width = max(len(s.env) for s in SETTINGS)
    return "\n".join(f"{s.env:<{width}}  {s.meaning} (default {s.default or 'none'})" for s in SETTINGS)
