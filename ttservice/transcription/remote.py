"""A job's media on an agent's machine: fetched from the central service, cached by its hash.

The worker of an attempt asks the central service for the job's media with the
token its attempt was claimed with (`interfaces.api.media`). The file is kept under
`cache/media/<sha256>/<name>`, so that a job resumed on this machine, or another
job of the same file, reads it from the disk. A fetch that was cut continues where
it stopped (`Range`, `If-Range` on the hash), and what arrived is checked against
the hash the service recorded the first time it sent the file: every attempt, on
every machine, transcribes the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from ..config import Settings
from ..exceptions import MediaError, TTServiceError
from ..jobs import Job, Store, files
from ..messages import Message

log = logging.getLogger("ttservice.worker")

TOKEN_HEADER = "X-TTService-Media-Token"  # the headers of interfaces.api.media, both ways
SHA256_HEADER = "X-TTService-Media-SHA256"
TIMEOUT = httpx.Timeout(30.0, read=300.0)  # the first answer waits for the service to hash the file
CONNECT_TRIES = 6  # about half a minute of a service that does not answer
CUT_TRIES = 3  # a fetch cut midway is continued this many times before the job fails
CHUNK = 1 << 20
REPORT_EVERY = 5.0  # seconds between progress lines in the job's log
KEEP_DAYS = 2.0  # a cached file unused this long is deleted by the agent


class Cut(Exception):
    """The connection broke while the file came: what arrived stays, and the fetch continues."""


class NotThisAttempt(Exception):
    """The service no longer sends the media to this attempt: another one was claimed, or it ended."""


def fetched(store: Store, settings: Settings, job: Job, attempt: int, api_url: str) -> Path | None:
    """The job's media, fetched from the service at `api_url` for an agent's worker (the path it
    is read at); None if the job is no longer this attempt's."""
    token = store.media_token(job.id, attempt)
    if token is None:
        return None
    name = Path(job.media_path or "").name or "media"
    try:
        return Fetch(api_url, job.id, token, settings.media_cache_dir).run(name)
    except NotThisAttempt:
        return None


class Fetch:
    def __init__(
        self, api_url: str, job_id: int, token: str, cache_dir: Path, client: httpx.Client | None = None
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/internal/media/{job_id}"
        self.where = api_url
        self.headers = {TOKEN_HEADER: token}
        self.cache_dir = cache_dir
        self.client = client or httpx.Client(timeout=TIMEOUT)
        self.own_client = client is None

    def run(self, name: str) -> Path:
        """The file, fetched unless this machine has it; its path."""
        with contextlib.closing(self.client) if self.own_client else contextlib.nullcontext():
            first = self._request({"Range": "bytes=0-0"})  # its hash and size, or why not
            sha256 = first.headers[SHA256_HEADER]
            whole = first.headers.get("content-range", "").rpartition("/")[2]  # 206: "bytes 0-0/N"
            size = int(whole or first.headers["content-length"])  # 200: the file itself
            folder = self.cache_dir / sha256
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            with files.locked(folder / ".lock"):  # one fetch per file on this machine
                if not path.is_file():
                    self._fill(folder, path, sha256, size)
            os.utime(path)  # used now: kept KEEP_DAYS from now
            return path

    def _fill(self, folder: Path, path: Path, sha256: str, size: int) -> None:
        """Put the file at `path`: linked from a copy of the same bytes here, or fetched."""
        other = files.link_same(folder, path)
        if other is not None:
            log.info("Media %s is on this machine already (%s)", sha256[:12], other)
            return
        part = path.with_name(path.name + ".part")
        for _ in range(2):  # a corrupted copy is fetched once more, from the start
            for cut in range(CUT_TRIES):
                try:
                    self._download(part, sha256, size)
                    break
                except Cut as error:
                    if cut == CUT_TRIES - 1:
                        raise TTServiceError("media.fetch_cut", source=self.where, error=str(error)) from None
                    log.warning("The media fetch was cut (%s); continuing it", error)
            if files.sha256_of(part) == sha256:
                part.rename(path)
                return
            log.warning("The media received does not match its hash; fetching it again")
            part.unlink()
        raise MediaError("media.hash_mismatch", source=self.where)

    def _download(self, part: Path, sha256: str, size: int) -> None:
        """Fetch what `part` lacks of the file (all of it if it holds more than the file)."""
        have = part.stat().st_size if part.exists() else 0
        if have == size:
            return
        have = have if have < size else 0
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'} if have else {}
        if have:
            log.info("Continuing the media fetch at %.1f of %.1f MB", have / 2**20, size / 2**20)
        else:
            log.info("Fetching the media from %s (%.1f MB)", self.where, size / 2**20)
        started = reported = time.monotonic()
        got = 0
        with self._stream(headers) as response:
            mode = "ab" if response.status_code == 206 else "wb"  # 200: the whole file, from 0
            with open(part, mode) as f:
                try:
                    for chunk in response.iter_bytes(CHUNK):
                        f.write(chunk)
                        got += len(chunk)
                        if time.monotonic() - reported >= REPORT_EVERY:
                            reported = time.monotonic()
                            log.info("Fetched %.1f of %.1f MB", f.tell() / 2**20, size / 2**20)
                except httpx.HTTPError as error:
                    raise Cut(str(error) or type(error).__name__) from None
        seconds = max(time.monotonic() - started, 1e-6)
        mb = got / 2**20
        log.info("Fetched the media: %.1f MB in %.1f s (%.1f MB/s)", mb, seconds, mb / seconds)

    def _request(self, headers: dict[str, str]) -> httpx.Response:
        response = self._connect(lambda: self.client.get(self.url, headers={**self.headers, **headers}))
        self._check(response)
        return response

    @contextlib.contextmanager
    def _stream(self, headers: dict[str, str]) -> Iterator[httpx.Response]:
        request = self.client.build_request("GET", self.url, headers={**self.headers, **headers})
        response = self._connect(lambda: self.client.send(request, stream=True))
        try:
            if response.status_code >= 400:
                response.read()
            self._check(response)
            yield response
        finally:
            response.close()

    def _connect(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """`send()`, again for a while when the service does not answer (it may be restarting)."""
        for attempt in range(CONNECT_TRIES):
            try:
                return send()
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if attempt == CONNECT_TRIES - 1:
                    raise TTServiceError(
                        "media.fetch_unanswered", source=self.where, error=str(error)
                    ) from None
                time.sleep(min(2.0 * 2**attempt, 10.0))
            except httpx.HTTPError as error:
                raise TTServiceError("media.fetch_failed", source=self.where, error=str(error)) from None
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if response.status_code == 403:
            raise NotThisAttempt()
        try:
            said = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            said = f"{self.where} answered {response.status_code}."
        refused = Message("media.fetch_refused", detail=said)  # the central service's English
        if response.status_code in (410, 416):  # gone, or empty
            raise MediaError(refused)
        raise TTServiceError(refused)


def prune(cache_dir: Path, keep_days: float = KEEP_DAYS, now: float | None = None) -> int:
    """Delete cached media unused for `keep_days` (stale partial fetches too); how many files went.

    A folder whose fetch runs now is skipped; the folders and their lock files stay (a lock
    file removed while a fetch waits on it would let a second fetch in).
    """
    cutoff = (now or time.time()) - keep_days * 86400
    removed = 0
    for folder in cache_dir.glob("*"):
        if not folder.is_dir():
            continue
        with files.locked(folder / ".lock", wait=False) as held:
            if not held:
                continue
            for path in folder.iterdir():
                if path.name != ".lock" and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
    return removed
