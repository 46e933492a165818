"""whisper.cpp: models written in its layout, chosen by name or setting, refused in one sentence."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from ttservice.exceptions import ModelError, RequestError
from ttservice.models import catalog, ggml
from ttservice.transcription import engine
from ttservice.transcription.engine import FASTER_WHISPER, WHISPER_CPP, choose

from ..conftest import JFK_TXT, JFK_WAV, make_settings, tmpfs, ttservice, words

# tiny.en in whisper.cpp's own converter's layout: n_vocab, audio ctx/state/heads/layers, text
# ctx/state/heads/layers, mel bins, float16.
TINY_EN_HPARAMS = [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
# Per block: attn_ln (2), query (2), key (1), value (2), out (2), mlp_ln (2), mlp.0 (2), mlp.2 (2);
# a decoder block adds cross_attn_ln (2) and cross_attn's query, key, value, out (7).
TINY_TENSORS = 2 + 2 + 1 + 4 * 15 + 2 + 2 + 4 * 24 + 2


def read_ggml(path: Path) -> tuple[list[int], np.ndarray, list[bytes], dict[str, tuple]]:
    """The header, mel filters, vocabulary and tensors (name: shape, float type) of a ggml file."""
    data = path.read_bytes()
    magic, *hparams = struct.unpack_from("<I11i", data)
    assert magic == ggml.GGML_MAGIC
    pos = 48
    rows, cols = struct.unpack_from("<ii", data, pos)
    pos += 8
    filters = np.frombuffer(data, "<f4", rows * cols, pos).reshape(rows, cols)
    pos += rows * cols * 4
    (count,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tokens = []
    for _ in range(count):
        (length,) = struct.unpack_from("<i", data, pos)
        tokens.append(data[pos + 4 : pos + 4 + length])
        pos += 4 + length
    tensors = {}
    while pos < len(data):
        dims, length, kind = struct.unpack_from("<iii", data, pos)
        shape = struct.unpack_from(f"<{dims}i", data, pos + 12)
        pos += 12 + 4 * dims
        name = data[pos : pos + length].decode()
        pos += length + int(np.prod(shape)) * (2 if kind else 4)
        tensors[name] = (tuple(reversed(shape)), kind)
    assert pos == len(data)
    return hparams, filters, tokens, tensors


def test_tiny_en_is_written_in_whisper_cpps_layout(tiny_en_dir, tmp_path):
    target = tmp_path / "tiny.en.bin"
    steps = []
    ggml.write(tiny_en_dir, target, lambda done, total: steps.append((done, total)))
    hparams, filters, tokens, tensors = read_ggml(target)
    assert hparams == TINY_EN_HPARAMS
    assert filters.shape == (80, 201) and filters.max() > 0
    assert len(tokens) == 50257 and tokens[0] == b"!" and tokens[-1] == b"<|endoftext|>"
    assert tokens[262] == b" the"  # GPT-2's stand-in for a space (Ġ) made a space again
    assert len(tensors) == TINY_TENSORS
    assert tensors["encoder.blocks.0.attn.query.weight"] == ((384, 384), 1)  # cut from the fused qkv
    assert "encoder.blocks.0.attn.key.bias" not in tensors  # Whisper's key has no bias
    assert tensors["decoder.blocks.3.cross_attn.value.bias"] == ((384,), 0)
    assert tensors["encoder.conv1.bias"] == ((384, 1), 0) and tensors["encoder.positional_embedding"][1] == 0
    assert steps == [(n, 8) for n in range(9)]
    assert ggml.is_ggml(target) and not ggml.is_ggml(JFK_WAV)


def test_the_file_is_written_once_and_a_killed_writers_part_is_cleared(tiny_en_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    target = ggml.target_for(tiny_en_dir)
    target.parent.mkdir(parents=True)
    stale = target.with_name(target.name + ggml.PARTIAL_SUFFIX + "-999999")  # a pid no process has
    stale.write_bytes(b"half")
    first = ggml.ggml_file(tiny_en_dir)
    assert first == target and not stale.exists()
    written = first.stat().st_mtime_ns
    assert ggml.ggml_file(tiny_en_dir).stat().st_mtime_ns == written  # not written again
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_a_full_disk_while_writing_says_so_and_leaves_nothing(tiny_en_dir, tmp_path, monkeypatch):
    with tmpfs(tmp_path / "tiny-disk", "20m") as small:
        monkeypatch.setenv("HF_HUB_CACHE", str(small))
        with pytest.raises(
            ModelError, match="The disk is full, so the model could not be written for whisper"
        ):
            ggml.ggml_file(tiny_en_dir)
        assert [p for p in small.rglob("*") if p.is_file()] == []


def test_a_downloaded_models_file_lives_in_its_repo_folder(tmp_path, monkeypatch, tiny_en_dir):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snapshot = tmp_path / "models--org--whisper" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "model.bin").symlink_to(tiny_en_dir / "model.bin")
    assert ggml.target_for(snapshot).parent == tmp_path / "models--org--whisper" / "ggml"


def test_auto_is_whisper_cpp_on_apple_silicon_and_for_a_ggml_file(monkeypatch):
    monkeypatch.setattr(engine, "apple_silicon", lambda: False)
    assert choose("auto") == FASTER_WHISPER and choose("auto", ggml_model=True) == WHISPER_CPP
    assert choose("whisper.cpp") == WHISPER_CPP and choose(" Faster-Whisper ") == FASTER_WHISPER
    monkeypatch.setattr(engine, "apple_silicon", lambda: True)
    assert choose("auto") == WHISPER_CPP and choose("faster-whisper") == FASTER_WHISPER
    with pytest.raises(RequestError, match="'metal' is not an engine TTService knows"):
        choose("metal")


def test_a_ggml_file_is_a_model_and_runs_on_whisper_cpp(tiny_en_dir, tmp_path):
    settings = make_settings(tmp_path / "data")
    model = tmp_path / "ggml-tiny.en.bin"
    ggml.write(tiny_en_dir, model)
    ref = catalog.resolve(str(model))
    assert ref.kind == "ggml" and catalog.english_only(ref, ref.folder) is True
    done = ttservice(settings, "transcribe", str(JFK_WAV), "-m", str(model), "-f", "json")
    assert done.returncode == 0, done.stderr
    assert words(" ".join(s["text"] for s in json.loads(done.stdout)["segments"])) == words(
        JFK_TXT.read_text()
    )
    shown = json.loads(ttservice(settings, "show", "1", "--json").stdout)
    assert shown["engine"] == WHISPER_CPP and shown["options"]["engine"] == "auto"
    assert ttservice(settings, "show", "1", "--json").returncode == 0


def test_each_engine_refusal_is_one_sentence_at_submit(tiny_en_dir, tmp_path):
    """An engine that cannot be is refused before any job exists; a file that is no model fails its
    job with the reason, as any model that cannot be had does."""
    settings = make_settings(tmp_path / "data")
    model = tmp_path / "ggml-tiny.en.bin"
    ggml.write(tiny_en_dir, model)
    not_a_model = tmp_path / "notes.bin"
    not_a_model.write_bytes(b"not a model")
    cases = {
        ("-m", str(model), "--engine", "faster-whisper"): "which faster-whisper cannot load",
        ("-m", str(not_a_model)): "is a file, but not a whisper.cpp (ggml) model",
        ("--engine", "metal"): "Invalid value for '--engine'",
    }
    for args, sentence in cases.items():
        done = ttservice(settings, "transcribe", str(JFK_WAV), *args)
        assert done.returncode == 2, done.stderr
        assert sentence in done.stderr and "Traceback" not in done.stderr
    bad_setting = make_settings(tmp_path / "data", engine="metal")
    done = ttservice(bad_setting, "submit", str(JFK_WAV))
    assert done.returncode == 2 and "'metal' is not an engine TTService knows" in done.stderr
    jobs = json.loads(ttservice(settings, "jobs", "--json").stdout)
    assert [(j["status"], "not a whisper.cpp (ggml) model" in j["error"]) for j in jobs] == [("failed", True)]


def test_whisper_cpp_asked_for_a_model_it_cannot_have_is_refused_at_submit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = make_settings(tmp_path / "data")
    done = ttservice(settings, "transcribe", str(JFK_WAV), "--engine", "whisper.cpp", "-m", "small")
    assert (
        done.returncode == 2
        and "The model ggml-small is not downloaded and HF_HUB_OFFLINE is set" in done.stderr
    )


def test_version_and_models_list_say_what_whisper_cpp_uses_here(tmp_path):
    settings = make_settings(tmp_path / "data", engine="whisper.cpp")
    version = ttservice(settings, "--version").stdout
    assert "jobs run on: whisper.cpp on the CPU (" in version
    assert "whisper.cpp: WHISPER : " in version and "CPU : " in version
    listed = ttservice(settings, "models", "list").stdout
    assert "Jobs run on whisper.cpp on the CPU" in " ".join(listed.split())


def test_a_models_ggml_file_is_written_by_its_first_job_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    settings = make_settings(tmp_path / "data", engine="whisper.cpp")
    for job_id in (1, 2):
        done = ttservice(settings, "transcribe", str(JFK_WAV))
        assert done.returncode == 0 and words(done.stdout) == words(JFK_TXT.read_text())
        log = ttservice(settings, "logs", str(job_id)).stdout
        assert ("Writing tiny.en for whisper.cpp (once)" in log) == (job_id == 1)
        assert "runs on whisper.cpp on the CPU" in log and "whisper_model_load" not in log
    assert len(list((tmp_path / "cache" / "ttservice-ggml").iterdir())) == 1
