"""Media kept by content hash: the uploads on the central machine, and an agent's cache.

Both keep a file as `<folder>/<sha256>/<name>`. The name keeps messages readable;
the same bytes under another name are a hard link to the copy already there, not a
second copy. An upload is stored so when it is saved, its hash written on its job
in the same step: an agent that fetches it checks what it received against the
upload itself, and the same file uploaded twice is kept once. A stored file is
deleted with the last job that names it.

Placing an upload and deleting one happen under one lock (`upload_dir/.lock`), the
job's row written inside it: a delete never removes a file that a job being saved
is about to name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..exceptions import MediaError
from .record import Runner
from .store import Store

log = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextlib.contextmanager
def locked(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on the file `path` (made if missing); False if not `wait` and taken."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def link_same(folder: Path, path: Path) -> str | None:
    """Make `path` a hard link to a file already in its hash folder; the name linked, or None
    (none there, or a file system without hard links)."""
    for other in folder.iterdir():
        if other == path or other.name.startswith(".") or other.name.endswith(".part"):
            continue
        if other.is_file():
            try:
                os.link(other, path)
            except OSError:
                return None
            return other.name
    return None


def staging(upload_dir: Path, job_id: int, name: str) -> Path:
    """Where an upload waits while it is checked, before it is stored: its folder made."""
    folder = _staging_folder(upload_dir, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / name).resolve()
    if folder.resolve() != path.parent:
        raise MediaError("media.name_not_allowed", name=name)
    return path


def store_upload(
    store: Store, upload_dir: Path, job_id: int, staged: Path, sha256: str, runner: Runner
) -> Path:
    """Store the staged upload by its hash and hand its job to the service (`runner`); its path.

    The staged file is moved, or dropped when the same bytes under the same name are kept
    already; under another name they are linked.
    """
    folder = upload_dir / sha256
    path = folder / staged.name
    with locked(_lock_path(upload_dir)):
        folder.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size == staged.stat().st_size:
            staged.unlink()
        elif link_same(folder, path) is not None:
            staged.unlink()
        else:
            staged.replace(path)
        store.hand_upload_to_service(job_id, str(path), runner, sha256=sha256)
    remove_empty(staged.parent)
    log.info("job %s: upload stored as %s/%s", job_id, sha256[:12], path.name)
    return path


def discard_staged(upload_dir: Path, job_id: int) -> None:
    """Remove what is staged of the job's upload: it was refused, or it was cut short."""
    shutil.rmtree(_staging_folder(upload_dir, job_id), ignore_errors=True)


def _staging_folder(upload_dir: Path, job_id: int) -> Path:
    return upload_dir / ".incoming" / f"job-{job_id}"


def delete_job(store: Store, upload_dir: Path, job_id: int, media_path: str | None) -> None:
    """Delete the job, and its stored upload unless another job (a re-run) names the file too."""
    discard_staged(upload_dir, job_id)
    with locked(_lock_path(upload_dir)):
        store.delete_job(job_id)
        if not media_path:
            return
        path = Path(media_path)
        if upload_dir.resolve() not in path.resolve().parents or store.jobs_naming(media_path):
            return  # a file of the user's own, used in place; or still another job's
        path.unlink(missing_ok=True)
        remove_empty(path.parent)


def _lock_path(upload_dir: Path) -> Path:
    upload_dir.mkdir(parents=True, exist_ok=True)
    return upload_dir / ".lock"


def remove_empty(folder: Path) -> None:
    """Remove `folder` if it is empty (an upload's folder once its last file went)."""
    try:
        folder.rmdir()
    except OSError:
        pass
