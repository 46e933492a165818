"""Synthetic speech for tests and benchmarks (espeak-ng), with the text it speaks."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

# espeak-ng reads this at about 175 words a minute.
SPEECH = (
    "The history of the town begins with a small mill on the river. Farmers brought their grain "
    "from the valley, and the miller kept careful records of every sack. Over the years a market "
    "grew around the mill, then a school, a church and a railway station. Today the old mill is a "
    "museum, and children visit it to learn how bread was made two hundred years ago. "
)


def synthesize(path: Path, text: str) -> Path:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is required; ./setup.sh --test installs it")
    subprocess.run(["espeak-ng", "-s", "165", "-w", str(path), text], check=True, capture_output=True)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def speech_with_pauses(path: Path, minutes: float, work: Path) -> tuple[Path, str]:
    """About `minutes` of speech, a sentence at a time with 0.5-3 s of silence between; and its text."""
    sentences = [s.strip() + "." for s in SPEECH.split(".") if s.strip()]
    rng = np.random.default_rng(7)
    pieces, spoken, total, i = [], [], 0.0, 0
    while total < minutes * 60:
        sentence = sentences[i % len(sentences)]
        wav = synthesize(work / f"sentence{i % len(sentences)}.wav", sentence)
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        pause = np.zeros(int(rate * rng.uniform(0.5, 3.0)), np.float32)
        pieces += [samples, pause]
        spoken.append(sentence)
        total += (len(samples) + len(pause)) / rate
        i += 1
    return write_wav(path, np.concatenate(pieces), rate), " ".join(spoken)


# Two voices espeak-ng renders very differently: an American man in English, a higher German voice.
DIALOGUE = (
    ("A", ["-v", "en-us"], "Good morning everyone. Let us start the meeting with the budget for next "
     "quarter. We have three items on the agenda today."),
    ("B", ["-v", "de", "-p", "80", "-s", "140"], "Danke schön. Ich habe die Zahlen für das nächste Quartal "
     "vorbereitet, und wir sollten über die Kosten sprechen."),
    ("A", ["-v", "en-us"], "That sounds good. Please share the numbers with the whole team before Friday "
     "so we can decide."),
    ("B", ["-v", "de", "-p", "80", "-s", "140"], "Natürlich, ich schicke die Tabelle heute Abend an alle "
     "Kollegen im Team."),
)  # fmt: skip


def dialogue(path: Path, work: Path) -> tuple[Path, list[tuple[float, float, str]]]:
    """A four-turn dialogue of two voices, half a second between turns, and who speaks when."""
    from faster_whisper.audio import decode_audio

    parts, turns, at = [], [], 0.0
    for i, (who, voice, text) in enumerate(DIALOGUE):
        wav = work / f"turn{i}.wav"
        subprocess.run(["espeak-ng", *voice, "-w", str(wav), text], check=True, capture_output=True)
        samples = decode_audio(str(wav))
        parts += [samples, np.zeros(8000, dtype=np.float32)]
        turns.append((at, at + len(samples) / 16000, who))
        at += len(samples) / 16000 + 0.5
    return write_wav(path, np.concatenate(parts)), turns


def long_dialogue(path: Path, work: Path, minutes: float) -> tuple[Path, list[tuple[float, float, str]]]:
    """The dialogue's two voices taking turns for `minutes`, never saying the same thing twice
    (sentences drawn from SPEECH's words, one to three a turn): long audio whose speaker
    embeddings are not copies of each other, as a tiled recording's would be. And who speaks when."""
    from faster_whisper.audio import decode_audio

    voices = {who: voice for who, voice, _ in DIALOGUE}
    vocabulary = SPEECH.replace(".", "").replace(",", "").split()
    rng = np.random.default_rng(7)
    parts, turns, at, i = [], [], 0.0, 0
    while at < minutes * 60:
        who = "AB"[i % 2]
        count = rng.integers(1, 4)
        text = " ".join(" ".join(rng.choice(vocabulary, rng.integers(6, 14))) + "." for _ in range(count))
        wav = work / f"long-turn{i}.wav"
        subprocess.run(["espeak-ng", *voices[who], "-w", str(wav), text], check=True, capture_output=True)
        samples = decode_audio(str(wav))
        pause = np.zeros(int(16000 * rng.uniform(0.3, 1.0)), dtype=np.float32)
        parts += [samples, pause]
        turns.append((at, at + len(samples) / 16000, who))
        at += (len(samples) + len(pause)) / 16000
        i += 1
    return write_wav(path, np.concatenate(parts)), turns
