"""What a user does to models: list, download, stop a download, remove; what a job waits for.

The CLI's `ttservice models ...` and the web app's Models page call these.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import platform
from ..config import Settings
from ..exceptions import ModelError
from ..jobs import Download, Job, JobStatus, Runner, Store, TranscribeOptions
from ..jobs.record import PHASE_CONVERTING
from ..messages import Message
from ..models import catalog, convert, hub
from ..models.convert import FORMAT_GGML


@dataclass(frozen=True)
class ModelInfo:
    name: str
    repo_id: str | None
    installed: bool
    path: Path | None
    size_bytes: int | None
    multilingual: bool | None  # None: cannot tell before it is downloaded
    bundled: bool = False
    download: Download | None = None  # the one running now
    memory_mb: float | None = None  # a job's expected peak with it, as jobs run here
    download_mb: float | None = None  # before it is downloaded: about what it weighs
    speed: float | None = None  # ×realtime of its completed jobs here
    expected_speed: float | None = None  # when it has none: what its size suggests
    recommended: bool = False
    format: str | None = None  # installed: "ctranslate2", "transformers" (converted here) or "ggml"
    source: str | None = None  # the repo its files came from
    languages: list[str] | None = None  # what a fine-tune was tuned for (None: Whisper's own)
    license: str | None = None  # a fine-tune's, as its model card states it
    published: str | None = None  # a fine-tune's accuracy, as its authors published it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repo_id": self.repo_id,
            "installed": self.installed,
            "path": str(self.path) if self.path else None,
            "size_bytes": self.size_bytes,
            "multilingual": self.multilingual,
            "bundled": self.bundled,
            "download": self.download.to_dict() if self.download else None,
            "memory_mb": self.memory_mb,
            "download_mb": self.download_mb,
            "speed": self.speed,
            "expected_speed": self.expected_speed,
            "recommended": self.recommended,
            "format": self.format,
            "source": self.source or self.repo_id,
            "languages": self.languages or _languages(self.multilingual),
            "license": self.license,
            "published": self.published,
        }


def _languages(multilingual: bool | None) -> list[str] | None:
    """Whisper's own: ["en"] for an English-only model, every language it knows for the others."""
    if multilingual is None:
        return None
    from ..models.languages import LANGUAGES

    return ["en"] if not multilingual else list(LANGUAGES)


def list_models(store: Store, settings: Settings) -> list[ModelInfo]:
    """The bundled model, every known size name, every other Whisper model in the hub cache, and
    the local folders added on the Models page."""
    bundled = catalog.resolve(catalog.BUNDLED)
    found = {i.repo_id: i for i in hub.installed_models()}
    running = {d.repo_id: d for d in store.list_downloads(active_only=True)}
    models = [
        ModelInfo(
            bundled.name,
            bundled.repo_id,
            True,
            bundled.folder,
            hub.folder_size(bundled.folder),
            catalog.multilingual(bundled.folder),
            bundled=True,
            format=convert.FORMAT_CT2,
            source=bundled.repo_id,
        )
    ]
    named = set()
    for name, repo in catalog.known_models().items():
        if name == catalog.BUNDLED:
            continue
        named.add(repo)
        models.append(_info(name, repo, found.get(repo), running.get(repo)))
    for name, tuned in catalog.FINE_TUNES.items():
        named.add(tuned.repo_id)
        info = _info(name, tuned.repo_id, found.get(tuned.repo_id), running.get(tuned.repo_id))
        models.append(
            replace(info, languages=list(tuned.languages), license=tuned.license, published=tuned.published)
        )
    for repo, installed in found.items():
        if repo not in named:
            models.append(_info(repo, repo, installed, running.get(repo)))
    models.extend(_ggml_files(running))
    for folder in folders(settings):
        if folder.is_dir():
            size = hub.folder_size(folder)
            models.append(
                ModelInfo(
                    str(folder),
                    None,
                    True,
                    folder,
                    size,
                    catalog.multilingual(folder),
                    format=convert.FORMAT_CT2,
                )
            )
    from ..models import memory

    speeds = memory.speeds_here(store)
    return recommend(_fitted(models, speeds, settings), settings, speeds)


def _fitted(models: list[ModelInfo], speeds: dict[str, float], settings: Settings) -> list[ModelInfo]:
    """Each model with its memory, download size and speed here (measured or expected)."""
    from ..models import memory

    shapes = {m.name: memory.model_shape(m.path and str(m.path) or m.name) for m in models}
    measured = [(speeds[n], s) for n, s in shapes.items() if s is not None and speeds.get(n)]
    fitted = []
    for m in models:
        shape = shapes[m.name]
        options = TranscribeOptions.from_settings(settings, model=str(m.path) if m.path else m.name)
        expected = None
        if shape is not None and not speeds.get(m.name):
            expected = memory.expected_speed(shape, measured)
        fitted.append(
            replace(
                m,
                memory_mb=memory.options_estimate_mb(shape, options) if shape else None,
                download_mb=round(shape.params * 2) if shape and not m.installed else None,  # float16
                speed=speeds.get(m.name),
                expected_speed=expected,
            )
        )
    return fitted


def recommend(models: list[ModelInfo], settings: Settings, speeds: dict[str, float]) -> list[ModelInfo]:
    """Mark the most accurate multilingual size, and the most accurate Thai fine-tune, that fit
    under the memory limit and ran here at realtime or faster, or (never run here) are expected
    to run at twice realtime."""
    from ..models import memory

    chosen = {memory.most_accurate(memory.BY_ACCURACY, settings, speeds)}
    chosen.add(memory.most_accurate(memory.THAI_BY_ACCURACY, settings, speeds))
    return [replace(m, recommended=m.name in chosen) for m in models]


def thai_suggestion(store: Store, settings: Settings, options: TranscribeOptions) -> ModelInfo | None:
    """For Thai asked of a model not tuned for it: the Thai fine-tune recommended here."""
    if options.language != "th":
        return None
    tuned = catalog.fine_tune(options.model)
    if tuned is not None and "th" in tuned.languages:
        return None
    from ..models import memory

    name = memory.most_accurate(memory.THAI_BY_ACCURACY, settings, memory.speeds_here(store))
    return next((m for m in list_models(store, settings) if m.name == name), None) if name else None


def _ggml_files(running: dict[str, Download]) -> list[ModelInfo]:
    """whisper.cpp's own files (`ggml-base`, ...) that are downloaded, or downloading."""
    found = []
    for name in catalog.GGML_MODELS:
        ref = catalog.resolve(catalog.GGML_PREFIX + name)
        path, download = hub.ggml_file(ref), running.get(ref.download_key)
        if path is None and download is None:
            continue
        english = catalog.english_only_by_name(ref.name)
        found.append(
            ModelInfo(
                ref.name,
                ref.repo_id,
                path is not None,
                path,
                path.stat().st_size if path else None,
                catalog.multilingual(path) if path else not english,
                download=download,
                format=FORMAT_GGML if path else None,
                source=ref.download_key,
            )
        )
    return found


def _info(name: str, repo: str, installed: hub.Installed | None, download: Download | None) -> ModelInfo:
    if installed is not None:
        multilingual = catalog.multilingual(installed.folder)
        return ModelInfo(
            name,
            repo,
            True,
            installed.folder,
            installed.size_bytes,
            multilingual,
            download=download,
            format=installed.format,
            source=repo,
        )
    english = catalog.english_only_by_name(name)
    return ModelInfo(
        name, repo, False, None, None, None if english is None else not english, download=download
    )


def installed_names(store: Store, settings: Settings) -> list[str]:
    """Names of the models a job can use right now, the bundled one first."""
    return [m.name for m in list_models(store, settings) if m.installed]


def _folders_file(settings: Settings) -> Path:
    return settings.data_dir / "model-folders.json"


def folders(settings: Settings) -> list[Path]:
    """Local model folders added by hand (used in place, never copied)."""
    try:
        return [Path(p) for p in json.loads(_folders_file(settings).read_text())]
    except (OSError, ValueError):
        return []


def add_folder(settings: Settings, path: str) -> Path:
    """Remember a local CTranslate2 Whisper folder as a model; one sentence if it is not one."""
    ref = catalog.resolve(path)
    if ref.kind != "folder":
        raise ModelError("model.not_a_folder", path=path)
    known = folders(settings)
    if ref.folder not in known:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _folders_file(settings).write_text(json.dumps([str(p) for p in [*known, ref.folder]], indent=2))
    return ref.folder


def request_download(store: Store, name: str) -> Download | Path:
    """Ask for a model to be downloaded (the web app's way: the page may close, the service stays).

    Returns the folder if the model is on disk already, else the download's row: the one
    running already, or a request that the running service (or the next command that
    needs the model) takes and starts.
    """
    ref = catalog.resolve(name)
    folder = hub.installed_folder(ref)
    if folder is not None:
        return folder
    hub.check_remote(ref)
    download_id, _ = store.start_download(ref.name, ref.download_key, Runner.UNCLAIMED)
    return store.get_download(download_id)


def download(
    store: Store,
    settings: Settings,
    name: str,
    on_update: Callable[[Download], None] | None,
    cancel: threading.Event,
) -> Path | Download:
    """Download a model in a supervised process of this command and wait for it.

    Returns the model's folder when it is (or was already) on disk, else the download's
    row as it ended (failed, or cancelled through `cancel`: its partial files stay).
    Joins the download another process runs for it, if there is one.
    """
    from ..supervision import ProcessManager

    ref = catalog.resolve(name)
    folder = hub.installed_folder(ref)
    if folder is not None:
        return folder
    hub.check_remote(ref)
    pm = ProcessManager(store, settings, runner=Runner.FOREGROUND)
    try:
        row = pm.downloads.fetch(ref, on_update, cancel)
        folder = hub.installed_folder(ref)
        return folder if folder is not None else row
    finally:
        pm.shutdown()


def stop_download(store: Store, settings: Settings, download_id: int) -> bool:
    from ..supervision import ProcessManager

    return ProcessManager(store, settings).downloads.stop(download_id)


def remove(store: Store, settings: Settings, name: str) -> Path:
    """Delete a downloaded model (or forget an added folder, leaving its files); refused in one
    sentence while a job or a download uses it."""
    ref = catalog.resolve(name)
    if ref.kind == "bundled":
        raise ModelError("model.bundled", model=ref.name)
    if ref.kind == "ggml":
        raise ModelError("model.file_of_yours", model=ref.name)
    if ref.kind == "folder":
        if ref.folder not in folders(settings):
            raise ModelError("model.folder_of_yours", model=ref.name)
        _in_use(store, ref)
        kept = [str(p) for p in folders(settings) if p != ref.folder]
        _folders_file(settings).write_text(json.dumps(kept, indent=2))
        return ref.folder
    _in_use(store, ref)
    running = store.latest_download(ref.download_key)
    if running is not None and running.status is JobStatus.PROCESSING:
        raise ModelError("model.being_downloaded", model=ref.name, download_id=running.id)
    return hub.remove(ref)


def _in_use(store: Store, ref: catalog.ModelRef) -> None:
    users = [j.id for j in _unfinished_jobs(store) if _key_of(j) == _key(ref)]
    if users:
        jobs = ", ".join(str(i) for i in users)
        raise ModelError("model.in_use", model=ref.name, job_id=jobs)


def _unfinished_jobs(store: Store) -> list[Job]:
    return store.list_jobs(JobStatus.QUEUED, limit=100_000) + store.active_jobs()


def _key(ref: catalog.ModelRef) -> str:
    return ref.repo_id or ref.name


def _key_of(job: Job) -> str | None:
    try:
        return _key(catalog.resolve(job.options.model))
    except ModelError:
        return None


def waiting_for(
    store: Store, job: Job, settings: Settings | None = None
) -> tuple[Message, Download | None] | None:
    """Why a queued job waits (for its model, with the download running for it; or, given the
    settings, for memory); None if it does not."""
    if job.status is not JobStatus.QUEUED:
        return None
    if (download := _download_wait(store, job)) is not None or settings is None:
        return download
    from ..models import memory

    room = memory.Room(store, settings, settings.host_name or platform.node_name())
    waiting = room.waiting(job.options, memory.media_seconds(job))
    return (waiting, None) if waiting is not None else None


def _download_wait(store: Store, job: Job) -> tuple[Message, Download | None] | None:
    try:
        ref = catalog.resolve(job.options.model)
    except ModelError:
        return None
    if ref.kind != "hub" or hub.installed_folder(ref) is not None:
        return None
    latest = store.latest_download(ref.download_key)
    if latest is None or latest.status is not JobStatus.PROCESSING:
        return Message("model.waiting", model=ref.name), None
    if latest.phase == PHASE_CONVERTING:
        waiting = Message(
            "model.waiting_converting", model=ref.name, done=latest.steps_done, total=latest.steps_total or 0
        )
        return waiting, latest
    if not latest.bytes_total:
        return Message("model.waiting_progress", model=ref.name, progress=latest.progress), latest
    waiting = Message(
        "model.waiting_bytes",
        model=ref.name,
        progress=latest.progress,
        done_mb=latest.bytes_done / 2**20,
        total_mb=latest.bytes_total / 2**20,
    )
    return waiting, latest
