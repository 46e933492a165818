"""The Hugging Face hub and its cache, as TTService uses them.

Models live in the hub's standard cache, so a model downloaded by any tool is
ours too and ours are theirs. The standard variables are read at each call
(`HF_ENDPOINT`, `HF_HOME` / `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_TOKEN`), so a
test or a second service can point elsewhere without restarting Python.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import ModelError
from .catalog import REQUIRED_FILES, TOKENIZER_FILES, ModelRef

DEFAULT_ENDPOINT = "https://huggingface.co"
CHECK_TIMEOUT = 10.0  # seconds a submit waits for the hub to say whether a model exists


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "on", "yes", "true"}


def cache_dir() -> Path:
    """The hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(env["HF_HUB_CACHE"])).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    return _true(os.environ.get("HF_HUB_OFFLINE")) or _true(os.environ.get("TRANSFORMERS_OFFLINE"))


def token() -> str | None:
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def repo_folder(repo_id: str) -> Path:
    """Where the cache keeps a repo: models--org--name."""
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def installed_folder(ref: ModelRef) -> Path | None:
    """The folder a model loads from, if it is complete on disk; None if it must be downloaded.

    A hub model counts as installed only when `refs/main` names a snapshot holding
    every file a Whisper model needs; TTService's downloads write that ref last.
    """
    if ref.kind != "hub":
        return ref.folder
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(ref.repo_id, f, cache_dir=cache_dir()) for f in REQUIRED_FILES]
    if not all(isinstance(f, str) and os.path.isfile(f) for f in found):
        return None
    folder = Path(found[0]).parent
    return folder if any((folder / f).is_file() for f in TOKENIZER_FILES) else None


@dataclass(frozen=True)
class Installed:
    repo_id: str
    folder: Path
    size_bytes: int


def installed_models() -> list[Installed]:
    """Every complete Whisper model in the hub cache, by whatever tool it was downloaded."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        repos = scan_cache_dir(cache_dir()).repos
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        folder = installed_folder(ModelRef(repo.repo_id, "hub", repo.repo_id))
        if folder is None:
            continue
        revision = next((r for r in repo.revisions if Path(r.snapshot_path) == folder), None)
        size = revision.size_on_disk if revision is not None else repo.size_on_disk
        found.append(Installed(repo.repo_id, folder, size))
    return found


def folder_size(folder: Path) -> int:
    """Bytes of the files a model folder holds (a snapshot's links followed to their blobs)."""
    total = 0
    for path in Path(folder).iterdir():
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def remove(ref: ModelRef) -> Path:
    """Delete a downloaded model from the cache, partial downloads included; return its folder."""
    folder = repo_folder(ref.repo_id)
    if not folder.exists():
        raise ModelError("model.not_downloaded", model=ref.name)
    shutil.rmtree(folder)
    return folder


def check_remote(ref: ModelRef) -> dict[str, Any]:
    """Ask the hub whether the model can be downloaded; one sentence if not.

    Returns {"sha": commit, "files": {name: size or None}} for the files a Whisper
    model needs.
    """
    if offline():
        raise ModelError("model.offline", model=ref.name)
    from fnmatch import fnmatch

    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = HfApi(endpoint=endpoint(), token=token()).model_info(
            ref.repo_id, revision="main", files_metadata=True, timeout=CHECK_TIMEOUT
        )
    except GatedRepoError:
        raise ModelError("model.gated", repo=ref.repo_id) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelError("model.not_on_hub", repo=ref.repo_id, hub=endpoint()) from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise ModelError("model.hub_answered", hub=endpoint(), status=status, repo=ref.repo_id) from None
    except Exception as error:  # httpx's connection and timeout errors, DNS, TLS
        raise ModelError(
            "model.hub_unreachable", model=ref.name, hub=endpoint(), error=type(error).__name__
        ) from None
    from .catalog import ALLOW_PATTERNS

    files = {
        s.rfilename: s.size
        for s in info.siblings or []
        if any(fnmatch(s.rfilename, pattern) for pattern in ALLOW_PATTERNS)
    }
    if not all(f in files for f in REQUIRED_FILES):
        raise ModelError("model.not_ct2_repo", repo=ref.repo_id)
    return {"sha": info.sha, "files": files, "siblings": info.siblings}
