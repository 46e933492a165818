"""Transformers-format Whisper models: served by the local hub, downloaded and converted once by
TTService, then used offline. The model is the multilingual test model itself, rewritten in
Transformers' names and files (tests/models/transformers_model.py), so the converted model must
give its words."""

import json
import os
import signal
import subprocess
import sys

import pytest

from ttservice.exceptions import ModelError
from ttservice.jobs import JobStatus
from ttservice.models import catalog, convert
from ttservice.models import hub as cache

from ..conftest import JFK_WAV, env_for, gone, tmpfs, ttservice, wait_for
from ..conftest import words as words_of
from ..hub_server import Repo

pytestmark = pytest.mark.model

FINE_TUNE = "thai-lab/whisper-base-th"  # a stand-in for a Thai fine-tune on the hub


@pytest.fixture(scope="module")
def base_words(base_model_dir, tmp_path_factory):
    """jfk.wav's words with the original CTranslate2 test model."""
    from ttservice.config import Settings

    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("original"))
    done = ttservice(settings, "transcribe", str(JFK_WAV), "--model", str(base_model_dir))
    assert done.returncode == 0, done.stderr
    return words_of(done.stdout)


def serve(hub, repo_id, folder):
    hub.repos[repo_id] = Repo(repo_id, folder)


def installed(name):
    return cache.installed_folder(catalog.resolve(name))


def transcribe_offline(settings, hub, model):
    """jfk.wav with `model`, the hub forbidden (HF_HUB_OFFLINE) and every request it gets recorded."""
    asked = len(hub.requests)
    done = subprocess.run(
        [sys.executable, "-m", "ttservice", "transcribe", str(JFK_WAV), "--model", model],
        env=env_for(settings) | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert hub.requests[asked:] == []  # nothing in the job reached for a model file
    return words_of(done.stdout)


def test_a_transformers_whisper_downloads_converts_once_and_transcribes_as_the_original(
    hub, settings, store, transformers_models, base_words
):
    serve(hub, FINE_TUNE, transformers_models["json"])
    done = ttservice(settings, "models", "download", FINE_TUNE, "--json")
    assert done.returncode == 0, done.stderr
    folder = installed(FINE_TUNE)
    assert folder is not None and json.loads(done.stdout)["path"] == str(folder)
    assert f"Converting {FINE_TUNE} to CTranslate2, needs about 0.4 GB of memory" in done.stderr
    assert {"model.bin", "tokenizer.json", "preprocessor_config.json"} <= {p.name for p in folder.iterdir()}
    row = store.list_downloads()[0]
    assert row.status is JobStatus.COMPLETED and row.phase == "converting"
    assert row.steps_total == 6 + 6 + 2 and row.steps_done == row.steps_total and row.memory_mb > 200
    source = convert.source_of(folder)
    assert source["repo_id"] == FINE_TUNE and source["quantization"] == "float16"
    listed = {m["name"]: m for m in json.loads(ttservice(settings, "models", "list", "--json").stdout)}
    model = listed[FINE_TUNE]
    assert model["installed"] and model["format"] == "transformers" and model["source"] == FINE_TUNE
    assert model["multilingual"] is True and model["memory_mb"] > 0
    assert listed["base"]["format"] is None  # not installed: nothing to say yet

    assert transcribe_offline(settings, hub, FINE_TUNE) == base_words

    again = ttservice(settings, "models", "download", FINE_TUNE)  # converted once, not again
    assert again.returncode == 0 and "ready" in again.stderr and len(store.list_downloads()) == 1


def test_a_repo_with_only_vocab_and_merges_gets_a_tokenizer_and_works_offline(
    hub, settings, store, transformers_models, base_words
):
    serve(hub, FINE_TUNE, transformers_models["bpe"])
    assert not (transformers_models["bpe"] / "tokenizer.json").exists()
    done = ttservice(settings, "models", "download", FINE_TUNE)
    assert done.returncode == 0, done.stderr
    assert (installed(FINE_TUNE) / "tokenizer.json").is_file()
    assert transcribe_offline(settings, hub, FINE_TUNE) == base_words


@pytest.mark.parametrize(
    "change, sentence",
    [
        (
            "no tokenizer",
            f"{FINE_TUNE} has no tokenizer: it needs tokenizer.json, or vocab.json and merges.txt.",
        ),
        ("not whisper", f"{FINE_TUNE} is not a Whisper model: its config.json says 'bert'."),
        ("pickled", f"{FINE_TUNE} has its weights only in pytorch_model.bin"),
    ],
)
def test_a_repo_that_cannot_be_converted_is_refused_at_submit_in_one_sentence(
    hub, settings, store, transformers_models, tmp_path, change, sentence
):
    folder = transformers_models["none"]
    if change != "no tokenizer":
        folder = tmp_path / "repo"
        folder.mkdir()
        for f in transformers_models["json"].iterdir():
            (folder / f.name).symlink_to(f)
    if change == "not whisper":
        (folder / "config.json").unlink()
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    if change == "pickled":
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not read")
    serve(hub, FINE_TUNE, folder)
    run = ttservice(settings, "transcribe", str(JFK_WAV), "--model", FINE_TUNE)
    assert run.returncode == 2 and sentence in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    (job,) = store.list_jobs()  # kept, failed, with the reason: nothing was downloaded for it
    assert job.status is JobStatus.FAILED and sentence in job.error and store.list_downloads() == []


def test_a_conversion_killed_half_way_is_never_installed_and_the_next_download_completes(
    hub, settings, store, transformers_models, base_words
):
    serve(hub, FINE_TUNE, transformers_models["bpe"])
    cli = subprocess.Popen(
        [sys.executable, "-m", "ttservice", "models", "download", FINE_TUNE],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        row = wait_for(
            lambda: [d for d in store.list_downloads() if d.phase == "converting"], 120, 0.005, "converting"
        )[0]
        os.kill(row.process_id, signal.SIGKILL)  # the download process itself, mid-conversion
        wait_for(lambda: gone(row.process_id), 30, what="the download process to die")
    finally:
        cli.kill()
        cli.wait()
    assert installed(FINE_TUNE) is None  # downloaded, but not converted: not installed
    done = ttservice(settings, "models", "download", FINE_TUNE)
    assert done.returncode == 0, done.stderr
    folder = installed(FINE_TUNE)
    assert folder is not None and [p.name for p in folder.parent.iterdir()] == [folder.name]  # no leftovers
    assert transcribe_offline(settings, hub, FINE_TUNE) == base_words


def test_a_full_disk_during_conversion_says_so_and_installs_nothing(
    hub, settings, store, transformers_models, tmp_path, monkeypatch
):
    # The download (145 MB) fits; its conversion (as much again) does not.
    with tmpfs(tmp_path / "small-cache", "220m") as small:
        monkeypatch.setenv("HF_HUB_CACHE", str(small))
        serve(hub, FINE_TUNE, transformers_models["json"])
        run = ttservice(settings, "models", "download", FINE_TUNE)
        assert run.returncode == 1 and "The disk is full, so the model could not be converted" in run.stderr
        assert "Traceback" not in run.stderr
        assert installed(FINE_TUNE) is None
        assert not list(cache.repo_folder(FINE_TUNE).glob("ctranslate2/*"))  # nothing half-written kept
        row = store.list_downloads()[0]
        assert row.status is JobStatus.FAILED and "free some space" in row.error
        listed = ttservice(settings, "models", "list", "--json")  # and TTService goes on
        assert listed.returncode == 0 and FINE_TUNE not in {m["name"] for m in json.loads(listed.stdout)}


def test_disk_full_while_writing_the_converted_model_leaves_no_partial_folder(transformers_models, tmp_path):
    with tmpfs(tmp_path / "tiny-disk", "40m") as small:
        with pytest.raises(ModelError, match="The disk is full, so the model could not be converted"):
            convert.convert(transformers_models["json"], small / "converted", {})
        assert list(small.iterdir()) == []


def test_a_tokenizer_built_from_vocab_and_merges_encodes_as_the_original(transformers_models, base_model_dir):
    from tokenizers import Tokenizer

    from ttservice.models import tokenizer

    built = Tokenizer.from_str(tokenizer.tokenizer_json(transformers_models["bpe"]))
    original = Tokenizer.from_file(str(base_model_dir / "tokenizer.json"))
    assert built.get_vocab_size() == original.get_vocab_size() == 51865
    for text in (" And so my fellow Americans", " สวัสดีครับ วันนี้ประชุม", " Grüß Gott, 1963!"):
        ids = original.encode(text, add_special_tokens=False).ids
        assert built.encode(text, add_special_tokens=False).ids == ids
        assert built.decode(ids) == original.decode(ids) == text
    for special in ("<|startoftranscript|>", "<|th|>", "<|notimestamps|>", "<|30.00|>"):
        assert built.token_to_id(special) == original.token_to_id(special)


def _bfloat16_copy(source, folder):
    """The model's safetensors rewritten as bfloat16 (NumPy has no such type: its top 16 bits, by hand)."""
    import numpy as np
    from safetensors.numpy import load_file

    folder.mkdir()
    for f in source.iterdir():
        if f.name != "model.safetensors":
            (folder / f.name).symlink_to(f)
    tensors = load_file(str(source / "model.safetensors"))
    header, blobs, offset = {}, [], 0
    for name, array in sorted(tensors.items()):
        data = (array.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    with open(folder / "model.safetensors", "wb") as out:
        out.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    return folder


def test_bfloat16_weights_convert_to_the_model_within_bfloat16s_precision(
    transformers_models, base_model_dir, tmp_path
):
    import numpy as np

    from .transformers_model import read_ct2

    bf16 = _bfloat16_copy(transformers_models["json"], tmp_path / "bf16")
    converted = read_ct2(convert.convert(bf16, tmp_path / "converted", {}) / "model.bin")
    original = read_ct2(base_model_dir / "model.bin")
    assert converted.keys() == original.keys()
    for name, weights in original.items():
        if weights.dtype == np.float16:
            assert np.allclose(converted[name], weights, rtol=2**-7, atol=1e-6), name


def test_a_running_conversion_counts_against_the_memory_limit(settings, store):
    from ttservice.jobs import Runner
    from ttservice.models import memory

    before = memory.Room(store, settings).used
    download_id, _ = store.start_download(FINE_TUNE, FINE_TUNE, Runner.FOREGROUND)
    assert memory.Room(store, settings).used == before  # downloading: no conversion yet
    assert store.download_phase(download_id, "converting", 0, 14, memory_mb=1900.0)
    assert memory.Room(store, settings).used == before + 1900.0
    store.finish_download(download_id, JobStatus.COMPLETED)
    assert memory.Room(store, settings).used == before


def test_a_conversion_that_cannot_fit_the_memory_limit_is_refused_before_it_starts(
    hub, settings, store, transformers_models
):
    from ..conftest import make_settings

    tight = make_settings(settings.data_dir, memory_limit_mb=300)
    serve(hub, FINE_TUNE, transformers_models["json"])
    run = ttservice(tight, "models", "download", FINE_TUNE)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert (
        f"Converting {FINE_TUNE} needs about 0.4 GB of memory, more than the memory limit of 0.3 GB"
        in run.stderr
    )
    assert installed(FINE_TUNE) is None and not cache.repo_folder(FINE_TUNE).joinpath("ctranslate2").exists()
    assert (
        ttservice(settings, "models", "download", FINE_TUNE).returncode == 0
    )  # under the usual limit it converts


def test_a_model_of_128_mel_bins_without_preprocessor_config_gets_128(transformers_models, tmp_path):
    """v3 and turbo models take 128 mel bins; faster-whisper assumes 80 where a folder does not say."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from ttservice.jobs import TranscribeOptions
    from ttservice.transcription.fasterwhisper import FasterWhisperEngine

    wide = tmp_path / "wide"
    wide.mkdir()
    for f in transformers_models["json"].iterdir():
        if f.name not in ("model.safetensors", "config.json", "preprocessor_config.json"):
            (wide / f.name).symlink_to(f)
    tensors = load_file(str(transformers_models["json"] / "model.safetensors"))
    conv = tensors["model.encoder.conv1.weight"]
    tensors["model.encoder.conv1.weight"] = np.concatenate(
        [conv, np.zeros((conv.shape[0], 48, 3), conv.dtype)], 1
    )
    save_file(tensors, str(wide / "model.safetensors"))
    config = json.loads((transformers_models["json"] / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "num_mel_bins": 128}))
    folder = convert.convert(wide, tmp_path / "converted", {})
    assert json.loads((folder / "preprocessor_config.json").read_text())["feature_size"] == 128
    (folder / "preprocessor_config.json").unlink()  # as a CTranslate2 copy without one
    engine = FasterWhisperEngine(TranscribeOptions(model=str(folder)))
    assert engine.model.feature_extractor.mel_filters.shape[0] == 128


def test_every_kind_of_model_transcribes_with_the_hub_forbidden(
    hub, settings, store, transformers_models, base_model_dir
):
    """The bundled model, a downloaded CTranslate2 repo, a converted Transformers repo and a local
    folder: none reaches for a model file in the job (HF_HUB_OFFLINE=1, and the hub records every
    request it gets)."""
    serve(hub, FINE_TUNE, transformers_models["json"])
    for model in ("base", FINE_TUNE):
        assert ttservice(settings, "models", "download", model).returncode == 0
    for model in ("tiny.en", "base", FINE_TUNE, str(base_model_dir)):
        assert "fellow" in transcribe_offline(settings, hub, model), model


def test_a_ctranslate2_repo_without_tokenizer_json_is_refused_at_submit(
    hub, settings, store, base_model_dir, tmp_path
):
    copy = tmp_path / "ct2-copy"
    copy.mkdir()
    for name in ("model.bin", "config.json", "vocabulary.json"):
        (copy / name).symlink_to(base_model_dir / name)
    serve(hub, "someone/whisper-th-ct2", copy)
    run = ttservice(settings, "models", "download", "someone/whisper-th-ct2")
    assert run.returncode == 2 and "has no tokenizer.json, so faster-whisper would fetch" in run.stderr
    assert store.list_downloads() == []


def test_a_transformers_model_runs_on_whisper_cpp_after_its_conversions(
    transformers_models, tmp_path, monkeypatch
):
    """Transformers → CTranslate2 (on download) → ggml (on first use with whisper.cpp): the same
    words as the original gives."""
    from faster_whisper.audio import decode_audio

    from ttservice.jobs import TranscribeOptions
    from ttservice.transcription.whispercpp import WhisperCppEngine

    from ..conftest import JFK_TXT, JFK_WAV, words

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    folder = convert.convert(transformers_models["bpe"], tmp_path / "converted", {})
    options = TranscribeOptions(model=str(folder), language="en", cpu_threads=2, engine="whisper.cpp")
    engine = WhisperCppEngine(options)
    assert engine.path.parent == tmp_path / "cache" / "ttservice-ggml" and engine.multilingual
    segments, _ = engine.transcribe(decode_audio(str(JFK_WAV), sampling_rate=16000), options)
    assert words(" ".join(s.text for s in segments)) == words(JFK_TXT.read_text())
