"""A multipart upload streamed to disk as it arrives: the file part never whole in memory.

python-multipart parses the stream; the file part's bytes go straight to a file under
the upload folder and are counted on the way, so an upload over the limit is refused
(413) the moment it passes it, and its partial file is removed. The form's other
fields are short text, each held to a few kilobytes.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import Request

from ...config import Settings
from ...jobs.files import remove_empty
from ...messages import Message
from .errors import ApiError

FIELD_LIMIT = 64 * 1024  # bytes of one text field (a prompt is the longest)
FORM_OVERHEAD = 1024 * 1024  # what a form may add to its file: boundaries, headers, fields


@dataclass
class Upload:
    path: Path | None = None  # the file part, on disk
    filename: str | None = None
    size: int = 0
    sha256: str | None = None  # of the file part, taken as it arrived
    fields: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            remove_empty(self.path.parent)


class _Receiver:
    """The parser's callbacks: where each part's bytes go."""

    def __init__(self, folder: Path, limit: int, file_field: str) -> None:
        self.folder, self.limit, self.file_field = folder, limit, file_field
        self.upload = Upload()
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._text = bytearray()
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers, self._name, self._text = {}, None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if self._name == self.file_field and filename is not None:
            if self.upload.path is not None:
                raise ApiError(400, Message("api.one_file"), param=self.file_field)
            self.folder.mkdir(parents=True, exist_ok=True)
            self.upload.filename = filename.decode("utf-8", "replace") or "upload"
            self.upload.path = self.folder / uuid.uuid4().hex
            self._file = open(self.upload.path, "wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.upload.size += end - start
            if self.upload.size > self.limit:
                limit_mb = self.limit / 2**20
                raise ApiError(
                    413, Message("media.upload_too_large", limit_mb=limit_mb), param=self.file_field
                )
            self._file.write(data[start:end])
            self._hash.update(data[start:end])
            return
        self._text += data[start:end]
        if len(self._text) > FIELD_LIMIT:
            too_long = Message("api.field_too_large", field=self._name, limit_kb=FIELD_LIMIT // 1024)
            raise ApiError(400, too_long, param=self._name)

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.upload.sha256 = self._hash.hexdigest()
        elif self._name:
            value = self._text.decode("utf-8", "replace")
            self.upload.fields.setdefault(self._name, []).append(value)

    def _end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive(request: Request, settings: Settings, file_field: str = "file") -> Upload:
    """The request's multipart form, its file on disk (None if it sent none).

    Raises ApiError for a body that is not multipart, too large, or cut short; nothing
    of it is left on disk then.
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(415, Message("api.not_multipart", field=file_field))
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        too_large = Message("media.declared_too_large", size_mb=int(declared) / 2**20, limit_mb=limit / 2**20)
        raise ApiError(413, too_large, param=file_field)
    receiver = _Receiver(settings.upload_dir / ".incoming", limit, file_field)
    parser = MultipartParser(boundary, receiver.callbacks())
    received = False
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if not receiver.ended:
            raise ApiError(400, Message("api.upload_cut"))
        received = True
    except MultipartParseError:
        raise ApiError(400, Message("api.malformed_form")) from None
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else "the disk refused it"
        raise ApiError(507, Message("media.upload_not_saved", reason=reason), "server_error") from None
    finally:
        if not received:  # refused, cut short, or the client went away: nothing is kept
            receiver.close()
            receiver.upload.discard()
    return receiver.upload
