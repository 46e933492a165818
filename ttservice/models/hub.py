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
from .catalog import REQUIRED_FILES, ModelRef
from .convert import FORMAT_CT2, FORMAT_GGML, FORMAT_TRANSFORMERS, source_of

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
    every file a Whisper model needs; TTService's downloads write that ref last. A
    Transformers-format repo is installed once its conversion of that snapshot is.
    """
    if ref.kind != "hub":
        return ref.folder
    if ref.file:
        return ggml_file(ref)
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(ref.repo_id, f, cache_dir=cache_dir()) for f in REQUIRED_FILES]
    if not all(isinstance(f, str) and os.path.isfile(f) for f in found):
        return converted_folder(ref.repo_id)
    return Path(found[0]).parent


def ggml_file(ref: ModelRef) -> Path | None:
    """A downloaded ggml file of whisper.cpp's repo: in the snapshot `refs/main` names, else in
    any (each of the repo's files is downloaded on its own, at the commit of its day)."""
    snapshots = repo_folder(ref.repo_id) / "snapshots"
    main = main_commit(ref.repo_id)
    found = [snapshots / main / ref.file] if main else []
    found += sorted(snapshots.glob(f"*/{ref.file}"))
    return next((path for path in found if path.is_file()), None)


def main_commit(repo_id: str) -> str | None:
    """The commit `refs/main` names: the snapshot a download finished last."""
    try:
        return (repo_folder(repo_id) / "refs" / "main").read_text().strip() or None
    except OSError:
        return None


def conversion_target(repo_id: str, commit: str) -> Path:
    """Where the CTranslate2 conversion of a Transformers repo's snapshot lives: inside the repo's
    own cache folder (removed with it), one per commit and quantization."""
    from .convert import QUANTIZATION

    return repo_folder(repo_id) / "ctranslate2" / f"{commit}-{QUANTIZATION}"


def converted_folder(repo_id: str) -> Path | None:
    """The finished conversion of the repo's main snapshot; None if there is none (yet)."""
    commit = main_commit(repo_id)
    if commit is None:
        return None
    folder = conversion_target(repo_id, commit)
    return folder if (folder / "model.bin").is_file() else None


@dataclass(frozen=True)
class Installed:
    repo_id: str
    folder: Path
    size_bytes: int
    format: str = FORMAT_CT2  # "transformers": converted here from the repo's Transformers files


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
        if source_of(folder) is not None:  # a conversion: its own files are what a job loads
            found.append(Installed(repo.repo_id, folder, folder_size(folder), FORMAT_TRANSFORMERS))
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
    """Delete a downloaded model from the cache, partial downloads included; return its folder
    (or, for one ggml file of whisper.cpp's repo, that file: the repo's others stay)."""
    folder = repo_folder(ref.repo_id)
    if not folder.exists() or (ref.file and ggml_file(ref) is None):
        raise ModelError("model.not_downloaded", model=ref.name)
    if ref.file:
        return _remove_file(folder, ref.file)
    shutil.rmtree(folder)
    return folder


def _remove_file(folder: Path, name: str) -> Path:
    """One file of a repo: its links in every snapshot and the blobs they point to; the repo's
    folder too once no snapshot holds a file."""
    removed = folder / "snapshots"
    for link in (folder / "snapshots").glob(f"*/{name}"):
        blob = link.resolve()
        link.unlink()
        blob.unlink(missing_ok=True)
        removed = link
    if not any(p.is_file() for p in (folder / "snapshots").rglob("*")):
        shutil.rmtree(folder)
    return removed


def check_remote(ref: ModelRef) -> dict[str, Any]:
    """Ask the hub whether the model can be downloaded; one sentence if not.

    Returns {"sha": commit, "files": {name: size or None}, "format": ...} for the files a
    Whisper model needs: a CTranslate2 model's, or a Transformers model's (safetensors, a
    tokenizer, a Whisper config), which the download converts; or the one ggml file of
    whisper.cpp's repo.
    """
    if offline():
        raise ModelError("model.offline", model=ref.name)
    if ref.file:
        return _check_ggml(ref)
    from fnmatch import fnmatch

    from . import convert, tokenizer
    from .catalog import ALLOW_PATTERNS

    info = _model_info(ref)
    siblings = {s.rfilename: s.size for s in info.siblings or []}
    kind = convert.format_of(siblings)
    if kind == "pickled":
        raise ModelError("model.pickled_only", repo=ref.repo_id)
    if kind is None or "config.json" not in siblings:
        raise ModelError("model.not_whisper_repo", repo=ref.repo_id)
    patterns = ALLOW_PATTERNS if kind == FORMAT_CT2 else convert.TRANSFORMERS_PATTERNS
    files = {name: size for name, size in siblings.items() if any(fnmatch(name, p) for p in patterns)}
    if kind == FORMAT_CT2 and "tokenizer.json" not in files:
        raise ModelError("model.ct2_without_tokenizer", repo=ref.repo_id)
    if kind == FORMAT_TRANSFORMERS:
        if not tokenizer.available(files):
            raise ModelError("model.no_tokenizer", repo=ref.repo_id)
        _check_config(ref, info.sha)
    return {"sha": info.sha, "files": files, "siblings": info.siblings, "format": kind}


def _model_info(ref: ModelRef) -> Any:
    """The hub's answer for the repo's main revision, with its files' sizes; one sentence if none."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return HfApi(endpoint=endpoint(), token=token()).model_info(
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


def _check_ggml(ref: ModelRef) -> dict[str, Any]:
    """Whether whisper.cpp's repo has the ggml file; the same answer as `check_remote`'s."""
    info = _model_info(ref)
    siblings = {s.rfilename: s.size for s in info.siblings or []}
    if ref.file not in siblings:
        raise ModelError("model.no_ggml_file", repo=ref.repo_id, file=ref.file, hub=endpoint())
    files = {ref.file: siblings[ref.file]}
    return {"sha": info.sha, "files": files, "siblings": info.siblings, "format": FORMAT_GGML}


def _check_config(ref: ModelRef, commit: str) -> None:
    """A Transformers repo's config.json says Whisper, or the repo is refused before anything is fetched."""
    import json

    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            ref.repo_id, "config.json", revision=commit, cache_dir=cache_dir(), endpoint=endpoint(),
            token=token(), etag_timeout=CHECK_TIMEOUT,
        )  # fmt: skip
        kind = json.loads(Path(path).read_text(encoding="utf-8")).get("model_type")
    except Exception as error:  # the hub unreachable half-way, or a config that is no JSON
        raise ModelError(
            "model.hub_unreachable", model=ref.name, hub=endpoint(), error=type(error).__name__
        ) from None
    if kind != "whisper":
        raise ModelError("model.not_whisper_config", repo=ref.repo_id, kind=kind or "?")
