"""Downloading a model into the hub cache, resumable across processes.

huggingface_hub writes each file to a temporary file of its own process and
starts over after a crash. Here each file is fetched with the library's
`http_get` into a partial file whose name is the file's ETag (the name its blob
will have), so whichever process comes next continues it with `resume_size`.
A file becomes a blob only once its size (and, for LFS files, its SHA-256) is
right; the snapshot's links and then `refs/main` are written only after every
file is a blob, so a killed download never leaves a model that looks installed.
The layout is the hub's own (blobs/, snapshots/<commit>/, refs/main), so other
tools find the model, and find theirs here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ModelError
from . import hub
from .catalog import ModelRef

PARTIAL_SUFFIX = ".ttservice-partial"
CHUNK_BYTES = 2**20
HASH_BLOCK = 2**20


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    etag: str
    size: int
    sha256: str | None  # LFS files carry one


class _Writing:
    """The partial file as `http_get` writes it: hashed on the way in (no second read at the end),
    and counted once written, so that the progress reported is what is on disk."""

    def __init__(self, f, digest, on_bytes: Callable[[int], None]) -> None:
        self._f, self.digest, self._on_bytes = f, digest, on_bytes

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        written = self._f.write(data)
        self._on_bytes(len(data))
        return written

    def __getattr__(self, name: str):
        return getattr(self._f, name)


class _Quiet:
    """What `http_get` takes as its progress bar: nothing shown (the store shows progress)."""

    def __init__(self, **_: object) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass


def plan(ref: ModelRef) -> tuple[str, list[RemoteFile]]:
    """The commit and the files to fetch (the hub's HEAD of each: its ETag, size and location)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    remote = hub.check_remote(ref)
    sha256 = {s.rfilename: (s.lfs.sha256 if s.lfs else None) for s in remote["siblings"] or []}
    files = []
    for name in sorted(remote["files"]):
        url = hf_hub_url(ref.repo_id, name, revision=remote["sha"], endpoint=hub.endpoint())
        try:
            meta = get_hf_file_metadata(url, token=hub.token(), timeout=hub.CHECK_TIMEOUT)
        except Exception as error:
            raise ModelError(
                "download.undescribed", file=name, repo=ref.repo_id, error=type(error).__name__
            ) from None
        if not meta.etag or meta.size is None:
            raise ModelError("download.no_etag", file=name, repo=ref.repo_id)
        files.append(RemoteFile(name, meta.location, meta.etag, meta.size, sha256.get(name)))
    return remote["sha"], files


def on_disk(storage: Path, files: list[RemoteFile]) -> int:
    """Bytes of these files already downloaded: whole blobs and partial files."""
    done = 0
    for f in files:
        blob = storage / "blobs" / f.etag
        partial = blob.with_name(f.etag + PARTIAL_SUFFIX)
        for path in (blob, partial):
            if path.exists():
                done += min(path.stat().st_size, f.size)
                break
    return done


def fetch(ref: ModelRef, on_progress: Callable[[int, int], None]) -> Path:
    """Download the model (continuing any partial files) and return its snapshot folder.

    `on_progress(done, total)` is called as bytes arrive, with every byte on disk
    counted, those of earlier attempts too.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    # http_get reads the body 10 MB at a time; 1 MB keeps the progress moving and what a
    # killed download loses in flight small. This is the download process's own setting.
    constants.DOWNLOAD_CHUNK_SIZE = CHUNK_BYTES

    commit, files = plan(ref)
    storage = hub.repo_folder(ref.repo_id)
    blobs = storage / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    total = sum(f.size for f in files)
    done = on_disk(storage, files)
    on_progress(done, total)

    def counted(n: int) -> None:
        nonlocal done
        done += n
        on_progress(done, total)

    headers = build_hf_headers(token=hub.token())
    for f in files:
        blob = blobs / f.etag
        if blob.exists() and blob.stat().st_size == f.size:
            continue
        partial = blobs / (f.etag + PARTIAL_SUFFIX)
        have = partial.stat().st_size if partial.exists() else 0
        if have > f.size:  # not this file's bytes: start it again
            done -= f.size
            partial.unlink()
            have = 0
        _check_room(ref, blobs, f.size - have)
        digest = _sha256_of(partial, have)  # what earlier attempts wrote, once
        try:
            with open(partial, "ab") as out:
                http_get(
                    f.url,
                    _Writing(out, digest, counted),
                    resume_size=have,
                    headers=headers,
                    expected_size=f.size,
                    displayed_filename=f.name,
                    tqdm_class=_Quiet,  # type: ignore[arg-type]
                )
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise ModelError("download.disk_full", model=ref.name, folder=str(hub.cache_dir())) from None
            raise ModelError("download.stopped_error", model=ref.name, error=str(error)) from None
        except Exception as error:  # httpx's connection and timeout errors after http_get's retries
            raise ModelError(
                "download.hub_unreachable", model=ref.name, hub=hub.endpoint(), error=type(error).__name__
            ) from None
        _verify(ref, f, partial, digest.hexdigest())
        os.replace(partial, blob)
        done = on_disk(storage, files)  # recounted: a server that ignored Range sent the file whole
        on_progress(done, total)
    _publish(storage, commit, files)
    return storage / "snapshots" / commit


def _check_room(ref: ModelRef, folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ModelError(
            "download.no_room",
            model=ref.name,
            needed_mb=needed / 2**20,
            folder=str(folder),
            free_mb=free / 2**20,
        )


def _verify(ref: ModelRef, f: RemoteFile, partial: Path, streamed: str) -> None:
    """Size and (for LFS files) SHA-256 right, or the partial file goes. The hash streamed in is
    read again only if it differs: a server that ignored Range had the file rewritten from 0."""
    size = partial.stat().st_size
    ok = size == f.size and (f.sha256 in (None, streamed) or _sha256_of(partial).hexdigest() == f.sha256)
    if not ok:
        partial.unlink(missing_ok=True)
        raise ModelError("download.corrupted", file=f.name, model=ref.name)


def _sha256_of(path: Path, length: int | None = None):
    """A SHA-256 object over the first `length` bytes of the file (all of it: None; none: 0)."""
    digest = hashlib.sha256()
    if length == 0 or not path.exists():
        return digest
    left = length
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK if left is None else min(HASH_BLOCK, left)):
            digest.update(block)
            if left is not None:
                left -= len(block)
                if left <= 0:
                    break
    return digest


def _publish(storage: Path, commit: str, files: list[RemoteFile]) -> None:
    """Link the snapshot to its blobs, then name it as main: from then on the model is installed."""
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in files:
        link = snapshot / f.name
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(storage / "blobs" / f.etag, link.parent)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target, link)
    refs = storage / "refs"
    refs.mkdir(exist_ok=True)
    pending = refs / ("main" + PARTIAL_SUFFIX)
    pending.write_text(commit)
    os.replace(pending, refs / "main")
