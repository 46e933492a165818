"""Probing, validating and decoding media.

Validation runs in this order so that each bad input gets its own sentence, and
so that size is checked before anything is decoded.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import MediaError, MediaTooLarge, NotMedia

if TYPE_CHECKING:  # numpy and PyAV load in the worker only; the CLI starts faster without them
    import av

    from .samples import GrowingAudio

SAMPLE_RATE = 16_000
TRUNCATION_RATIO = 0.9  # decoded audio shorter than this share of the declared length is truncated
DECODE_GROUP = 500_000  # source samples resampled at a time (faster-whisper's figure)
DECODE_AHEAD = 60 * SAMPLE_RATE  # samples decoded ahead of what the speech finder has asked for


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    size: int
    declared_duration: float | None


def check_file(path: str | Path, max_bytes: int) -> Path:
    """Cheap checks that need no decoder: exists, is a file, not empty, not too large."""
    try:
        p = Path(path).expanduser()
        found, regular = p.exists(), p.is_file()
        size = p.stat().st_size if regular else 0
    except (RuntimeError, OSError):  # ~user/... of a user this system lacks; a name too long
        raise MediaError("media.missing", path=str(path)) from None
    if not found:
        raise MediaError("media.missing", path=str(p))
    if not regular:
        raise MediaError("media.not_a_file", path=str(p))
    if size == 0:
        raise MediaError("media.empty", name=p.name)
    if size > max_bytes:
        raise MediaTooLarge("media.too_large", name=p.name, size_mb=size / 2**20, limit_mb=max_bytes / 2**20)
    return p


def probe(path: str | Path, max_bytes: int) -> MediaInfo:
    """Open the container and find an audio track, without decoding it."""
    import av

    p = check_file(path, max_bytes)
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise NotMedia("media.no_audio_track", name=p.name)
            stream = container.streams.audio[0]
            if container.duration:
                declared = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                declared = float(stream.duration * stream.time_base)
            else:
                declared = None
    except MediaError:
        raise
    except Exception:  # PyAV raises a family of FFmpeg errors for unreadable input
        raise NotMedia("media.unreadable", name=p.name) from None
    header = _wav_header_duration(p)
    if header is not None:
        # FFmpeg trims a WAV's declared length to the bytes present; its header does not.
        declared = max(declared or 0.0, header)
    return MediaInfo(p, p.stat().st_size, declared)


def _wav_header_duration(path: Path) -> float | None:
    with open(path, "rb") as f:
        magic = f.read(12)
    if magic[:4] != b"RIFF" or magic[8:12] != b"WAVE":
        return None
    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        return None  # not plain PCM: FFmpeg's figure stands


def decode_into(info: MediaInfo, out: GrowingAudio) -> None:
    """Decode to 16 kHz mono float32 into `out` as decoding goes, then finish it: with an error if
    the file is damaged, empty, or ends well before it says it does.

    The frames are grouped and resampled as faster-whisper's `decode_audio` does, so
    the samples are the same; that function returns them only at the end.
    """
    import av
    import numpy as np

    def resampled(frame: av.AudioFrame | None) -> None:
        for part in resampler.resample(frame):
            out.append(part.to_ndarray().reshape(-1).astype(np.float32) / 32768.0)

    try:
        resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        fifo = av.audio.fifo.AudioFifo()
        with av.open(str(info.path), mode="r", metadata_errors="ignore") as container:
            for frame in _valid_frames(container.decode(audio=0)):
                frame.pts = None  # no timestamp checks, as faster-whisper
                fifo.write(frame)
                if fifo.samples >= DECODE_GROUP:
                    if not out.wait_for_room(DECODE_AHEAD):
                        return  # nobody reads any more
                    resampled(fifo.read())
            if fifo.samples > 0:
                resampled(fifo.read())
            resampled(None)  # flush
    except Exception:  # PyAV raises a family of FFmpeg errors for a damaged file
        out.finish(MediaError("media.damaged", name=info.path.name))
        return
    decoded = out.length / SAMPLE_RATE
    if info.declared_duration and decoded < info.declared_duration * TRUNCATION_RATIO - 0.5:
        out.finish(
            MediaError(
                "media.truncated", name=info.path.name, declared=info.declared_duration, decoded=decoded
            )
        )
    elif out.length == 0:
        out.finish(MediaError("media.no_samples", name=info.path.name))
    else:
        out.finish()


def _valid_frames(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """The frames, skipping those FFmpeg finds invalid (as faster-whisper does)."""
    import av

    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue
