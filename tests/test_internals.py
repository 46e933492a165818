"""What TTService takes from the insides of faster-whisper, huggingface_hub and pywhispercpp: one
test each.

pyproject.toml pins them to the minor versions these pass on. An upgrade that changes one of
them fails here, naming the internal, instead of deep inside a job or a download.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def whisper(tiny_en_dir):
    from faster_whisper import WhisperModel

    return WhisperModel(str(tiny_en_dir), device="cpu", compute_type="int8")


def test_faster_whisper_reads_its_features_through_model_feature_extractor(whisper):
    """engine.py swaps `model.feature_extractor` for one that hands back features made beforehand."""
    original = whisper.feature_extractor
    calls = []

    class Spy:
        def __getattr__(self, name):
            return getattr(original, name)

        def __call__(self, *args, **kwargs):
            calls.append(args)
            return original(*args, **kwargs)

    whisper.feature_extractor = Spy()
    try:
        segments, _ = whisper.transcribe(np.zeros(16000, np.float32), language="en", vad_filter=False)
        list(segments)
    finally:
        whisper.feature_extractor = original
    assert calls, "WhisperModel.transcribe no longer calls model.feature_extractor: engine.py's swap is void"


def test_faster_whisper_feature_extractor_has_the_attributes_features_py_reads(whisper):
    """features.py computes the extractor's log-mel window by window from these."""
    fx = whisper.feature_extractor
    for name in ("nb_max_frames", "hop_length", "n_fft", "mel_filters", "stft"):
        assert hasattr(fx, name), f"faster-whisper's FeatureExtractor lost `{name}` (features.py reads it)"
    samples = np.random.default_rng(0).standard_normal(fx.n_fft * 4).astype(np.float32)
    window = np.hanning(fx.n_fft + 1)[:-1].astype(np.float32)
    stft = fx.stft(samples, fx.n_fft, fx.hop_length, window=window, center=False, return_complex=True)
    assert stft.shape[0] == fx.n_fft // 2 + 1, "FeatureExtractor.stft changed its output (features.py)"


def test_huggingface_hub_http_get_takes_what_download_py_gives():
    """models/download.py resumes files with `file_download.http_get` itself."""
    from huggingface_hub.file_download import http_get

    given = {"resume_size", "headers", "expected_size", "displayed_filename", "tqdm_class"}
    params = inspect.signature(http_get).parameters
    assert given <= params.keys(), f"huggingface_hub's http_get lost {given - params.keys()} (download.py)"
    source = inspect.getsource(http_get)
    assert "constants.DOWNLOAD_CHUNK_SIZE" in source, (
        "http_get no longer reads constants.DOWNLOAD_CHUNK_SIZE at each call: download.py sets it"
    )


def test_huggingface_hub_reads_the_cache_layout_download_py_writes(tmp_path, monkeypatch):
    """download.py writes blobs/, snapshots/<commit>/ and refs/main by hand; the hub's own
    functions (and every other tool) must find the model there."""
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    from ttservice.models import download

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    storage = tmp_path / "models--org--model"
    (storage / "blobs").mkdir(parents=True)
    (storage / "blobs" / "etag1").write_bytes(b"weights")
    commit = "a" * 40
    download._publish(storage, commit, [download.RemoteFile("model.bin", "", "etag1", 7, None)])
    found = try_to_load_from_cache("org/model", "model.bin", cache_dir=str(tmp_path))
    assert found is not None and open(found, "rb").read() == b"weights", "the hub no longer reads our layout"
    repos = {r.repo_id: r for r in scan_cache_dir(tmp_path).repos}
    assert "org/model" in repos and [r.commit_hash for r in repos["org/model"].revisions] == [commit]
    assert os.path.islink(storage / "snapshots" / commit / "model.bin")


def test_pywhispercpp_gives_its_context_token_data_and_settings(tiny_en_dir, tmp_path):
    """whispercpp.py reads each segment's tokens (id, log-probability, times) through the model's
    `_ctx`, sets whisper.cpp's own fallback and timestamps by name, and routes its log."""
    import _pywhispercpp as pw
    from pywhispercpp.model import Model

    from ttservice.models import ggml

    path = tmp_path / "tiny.en.bin"
    ggml.write(tiny_en_dir, path)
    messages = []
    pw.whisper_log_set(lambda level, text, *_: messages.append((level, text)))
    try:
        model = Model(str(path), redirect_whispercpp_logs_to=False, print_progress=False)
    finally:
        pw.whisper_log_set(None)
    assert messages and all(isinstance(level, int) for level, _ in messages)
    from faster_whisper.audio import decode_audio

    from .conftest import JFK_WAV

    settings = {"temperature_inc": 0.0, "token_timestamps": True, "no_context": True, "initial_prompt": ""}
    model.transcribe(decode_audio(str(JFK_WAV), sampling_rate=16000), language="en", **settings)
    params = model.get_params()
    assert params["temperature_inc"] == 0.0 and params["token_timestamps"] and params["no_context"]
    ctx = model._ctx
    assert pw.whisper_is_multilingual(ctx) == 0 and pw.whisper_token_eot(ctx) == 50256
    assert pw.whisper_full_n_segments(ctx) > 0
    for i in range(pw.whisper_full_n_segments(ctx)):
        for j in range(pw.whisper_full_n_tokens(ctx, i)):
            data = pw.whisper_full_get_token_data(ctx, i, j)
            assert {"id", "p", "plog", "t0", "t1"} <= set(dir(data)) and data.plog <= 0
            assert isinstance(pw.whisper_token_to_bytes(ctx, data.id), bytes)
        assert isinstance(pw.whisper_full_get_segment_text(ctx, i), bytes)
        assert pw.whisper_full_get_segment_t0(ctx, i) <= pw.whisper_full_get_segment_t1(ctx, i)
