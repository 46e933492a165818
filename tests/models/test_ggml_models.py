"""whisper.cpp's own files (ggerganov/whisper.cpp's `ggml-<name>.bin`) as models: a size name a
whisper.cpp job asks for is downloaded as its ggml file, by the same supervised, resumable
download, into the same cache; listed, used offline and removed one file at a time."""

from __future__ import annotations

import json

from ttservice.models import catalog, ggml
from ttservice.models import hub as cache
from ttservice.models.catalog import GGML_REPO

from ..conftest import JFK_TXT, JFK_WAV, ttservice, words
from ..hub_server import Repo


def serve_ggml(hub, base_model_dir, tiny_en_dir, folder):
    """whisper.cpp's repo on the local hub, with base and tiny.en written in its layout."""
    folder.mkdir()
    ggml.write(base_model_dir, folder / "ggml-base.bin")
    ggml.write(tiny_en_dir, folder / "ggml-tiny.en.bin")
    hub.repos[GGML_REPO] = Repo(GGML_REPO, folder)


def test_a_size_name_on_whisper_cpp_downloads_its_ggml_file_and_runs_offline(
    hub, settings, base_model_dir, tiny_en_dir, tmp_path, monkeypatch
):
    serve_ggml(hub, base_model_dir, tiny_en_dir, tmp_path / "whisper.cpp")
    done = ttservice(
        settings, "transcribe", str(JFK_WAV), "--engine", "whisper.cpp", "-m", "base", "-f", "json"
    )
    assert done.returncode == 0, done.stderr
    assert words(" ".join(s["text"] for s in json.loads(done.stdout)["segments"])) == words(
        JFK_TXT.read_text()
    )
    shown = json.loads(ttservice(settings, "show", "1", "--json").stdout)
    assert shown["model"] == "ggml-base" and shown["engine"] == "whisper.cpp"
    assert (
        hub.sent[f"{GGML_REPO}/ggml-base.bin"] == (tmp_path / "whisper.cpp" / "ggml-base.bin").stat().st_size
    )
    assert not any("Systran" in key for key in hub.sent)  # not the CTranslate2 model as well
    assert cache.installed_folder(catalog.resolve("base")) is None
    listed = {m["name"]: m for m in json.loads(ttservice(settings, "models", "list", "--json").stdout)}
    assert listed["ggml-base"]["installed"] and listed["ggml-base"]["format"] == "ggml"
    assert listed["ggml-base"]["source"] == f"{GGML_REPO}/ggml-base.bin" and listed["ggml-base"]["memory_mb"]

    # a second file of the same repo, downloaded on its own; then the hub is forbidden
    fetched = ttservice(settings, "models", "download", "ggml-tiny.en")
    assert fetched.returncode == 0, fetched.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    again = ttservice(settings, "transcribe", str(JFK_WAV), "--engine", "whisper.cpp", "-m", "ggml-base")
    assert again.returncode == 0 and words(again.stdout) == words(JFK_TXT.read_text())
    assert len(hub.requests) == asked

    # removed one file at a time: the other stays
    assert ttservice(settings, "models", "remove", "ggml-base").returncode == 0
    assert cache.ggml_file(catalog.resolve("ggml-base")) is None
    assert cache.ggml_file(catalog.resolve("ggml-tiny.en")) is not None
    assert ttservice(settings, "models", "remove", "ggml-tiny.en").returncode == 0
    assert not cache.repo_folder(GGML_REPO).exists()


def test_a_ggml_model_is_refused_in_one_sentence_where_it_cannot_be(
    hub, settings, base_model_dir, tiny_en_dir, tmp_path
):
    serve_ggml(hub, base_model_dir, tiny_en_dir, tmp_path / "whisper.cpp")
    missing = ttservice(settings, "transcribe", str(JFK_WAV), "-m", "ggml-small")
    assert missing.returncode == 2 and "has no file ggml-small.bin on the hub" in missing.stderr
    on_faster = ttservice(
        settings, "transcribe", str(JFK_WAV), "-m", "ggml-base", "--engine", "faster-whisper"
    )
    assert on_faster.returncode == 2 and "which faster-whisper cannot load" in on_faster.stderr
    english = ttservice(settings, "transcribe", str(JFK_WAV), "-m", "ggml-tiny.en", "--language", "de")
    assert english.returncode == 2 and "The model ggml-tiny.en is English-only" in english.stderr


def test_the_models_page_lists_a_downloaded_ggml_file(hub, web_env, base_model_dir, tiny_en_dir, tmp_path):
    from ..conftest import run_page

    serve_ggml(hub, base_model_dir, tiny_en_dir, tmp_path / "whisper.cpp")
    assert ttservice(web_env, "models", "download", "ggml-tiny.en").returncode == 0
    at = run_page("models.py")
    assert "**ggml-tiny.en** · :green-badge[installed]" in [m.value for m in at.markdown]
    assert any("whisper.cpp's own file" in c.value and "English only" in c.value for c in at.caption)
