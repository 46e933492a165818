"""Small media files for tests, made with PyAV (which faster-whisper already brings)."""

from pathlib import Path

import av
import numpy as np


def video_without_audio(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def video_with_audio(path: Path, wav: Path) -> Path:
    """An MP4 with a black video track and the wav's speech as AAC."""
    with av.open(str(wav)) as source:
        frames = list(source.decode(audio=0))
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=5)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for frame in frames:
            for out in resampler.resample(frame):
                container.mux(sound.encode(out))
        container.mux(sound.encode())
        seconds = sum(f.samples for f in frames) / frames[0].sample_rate
        for _ in range(int(seconds * 5)):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def bad_inputs(tmp_path: Path, speech: Path) -> dict[str, tuple[Path, str]]:
    """Every kind of bad input the core issue names: name -> (file, what its error says)."""
    not_media = tmp_path / "notes.wav"
    not_media.write_text("this is a text file, not audio\n" * 50)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(speech.read_bytes()[:100_000])
    unknown = tmp_path / "blob.xyz"
    unknown.write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    return {
        "not media": (not_media, "is not an audio or video file"),
        "empty": (empty, "is empty"),
        "truncated": (truncated, "appears truncated"),
        "unknown format": (unknown, "is not an audio or video file"),
        "missing": (tmp_path / "nowhere.wav", "does not exist"),
        "no audio track": (video_without_audio(tmp_path / "silent_film.mp4"), "has no audio track"),
    }
