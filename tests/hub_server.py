"""A local stand-in for the Hugging Face hub: the part of its protocol that downloads use.

- `GET /api/models/{org}/{name}[/revision/{rev}]`: the repo's commit and files (`siblings`, with
  sizes and LFS SHA-256s when `blobs=true`); `GET /api/models/{org}/{name}/tree/{rev}`: its files
  as `snapshot_download` lists them;
- `HEAD` / `GET /{org}/{name}/resolve/{rev}/{file}`: the file, with `ETag`, `X-Repo-Commit`,
  `Content-Length`, `Accept-Ranges` and `Range` (206), as the hub answers;
- an unknown repo or file: 404 with the hub's `X-Error-Code`.

It serves real model files from folders, can be throttled (bytes a second per response) and
counts every byte it sends per file, so that tests can tell what a resume fetched again.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

CHUNK = 64 * 1024


class Repo:
    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.files = {p.name: p for p in sorted(Path(folder).iterdir()) if p.is_file()}
        self.sha256 = {name: _sha256(path) for name, path in self.files.items()}
        self.commit = hashlib.sha1(repr(sorted(self.sha256.items())).encode()).hexdigest()

    def tree(self) -> list[dict]:
        return [
            {
                "type": "file",
                "path": name,
                "oid": self.sha256[name][:40],
                "size": path.stat().st_size,
                "lfs": {"oid": self.sha256[name], "size": path.stat().st_size, "pointerSize": 134},
            }  # fmt: skip
            for name, path in self.files.items()
        ]

    def info(self, blobs: bool) -> dict:
        siblings = []
        for name, path in self.files.items():
            entry: dict = {"rfilename": name}
            if blobs:
                size = path.stat().st_size
                entry.update(size=size, blobId=self.sha256[name][:40])
                entry["lfs"] = {"sha256": self.sha256[name], "size": size, "pointerSize": 134}
            siblings.append(entry)
        return {"id": self.repo_id, "modelId": self.repo_id, "sha": self.commit, "siblings": siblings,
                "private": False, "disabled": False, "gated": False, "tags": [], "downloads": 0}  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(2**20):
            digest.update(block)
    return digest.hexdigest()


class Hub:
    """`with Hub({"org/name": folder}) as hub:` serves at `hub.url` until the block ends."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo_id: Repo(repo_id, folder) for repo_id, folder in repos.items()}
        self.sent: Counter[str] = Counter()  # bytes sent, by "org/name/file"
        self.rate: float | None = None  # bytes a second per response, None: as fast as it goes
        self.requests: list[str] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
                hub._serve(self, body=False)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                hub._serve(self, body=True)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sent_for(self, repo_id: str) -> int:
        with self._lock:
            return sum(n for key, n in self.sent.items() if key.startswith(repo_id + "/"))

    # --- the protocol -----------------------------------------------------------------------

    def _serve(self, handler: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        with self._lock:
            self.requests.append(f"{handler.command} {path}")
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path):
            repo = self.repos.get(m.group(1))
            if repo is None:
                return _error(handler, 404, "RepoNotFound", "Repository not found")
            return _json(handler, repo.tree(), body)
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+?)(?:/revision/([^/]+))?", path):
            repo = self.repos.get(m.group(1))
            if repo is None:
                return _error(handler, 404, "RepoNotFound", "Repository not found")
            if m.group(2) not in (None, "main", repo.commit):
                return _error(handler, 404, "RevisionNotFound", "Invalid rev id")
            return _json(handler, repo.info("blobs=true" in (urlparse(handler.path).query or "")), body)
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            repo = self.repos.get(m.group(1))
            if repo is None:
                return _error(handler, 404, "RepoNotFound", "Repository not found")
            if m.group(3) not in repo.files:
                return _error(handler, 404, "EntryNotFound", "Entry not found")
            return self._file(handler, repo, m.group(3), body)
        return _error(handler, 404, None, "Not found")

    def _file(self, handler, repo: Repo, name: str, body: bool) -> None:
        path = repo.files[name]
        size = path.stat().st_size
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if ranged:
            start = min(int(ranged.group(1)), size)
        handler.send_response(206 if ranged else 200)
        handler.send_header("ETag", f'"{repo.sha256[name]}"')
        handler.send_header("X-Repo-Commit", repo.commit)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(size - start))
        if ranged:
            handler.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        handler.end_headers()
        if not body:
            return
        key = f"{repo.repo_id}/{name}"
        began = time.monotonic()
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(CHUNK):
                try:
                    handler.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                sent += len(chunk)
                with self._lock:
                    self.sent[key] += len(chunk)
                if self.rate:
                    ahead = sent / self.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)


def _json(handler, value, body: bool) -> None:
    data = json.dumps(value).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if body:
        handler.wfile.write(data)


def _error(handler, status: int, code: str | None, message: str) -> None:
    data = json.dumps({"error": message}).encode()
    handler.send_response(status)
    if code:
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)
