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
