"""The Models page, and what the other pages show of models: AppTests over a real store and a local hub."""

import pytest

from ttservice.jobs import JobStatus, Runner, TranscribeOptions
from ttservice.models import catalog, download
from ttservice.models import hub as cache

from ..conftest import JFK_WAV, ttservice
from ..conftest import run_page as run
from ..hub_server import Repo
from .conftest import BASE_REPO, TINY_REPO


@pytest.fixture
def web_env(hub, web_env):
    """The web app's environment, with the local hub's."""
    return web_env


def test_models_page_says_which_engine_jobs_run_on(web_env, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("TTSERVICE_ENGINE", "whisper.cpp")
    assert "Jobs run on whisper.cpp on the CPU." in run("models.py").caption[0].value
    monkeypatch.setenv("TTSERVICE_ENGINE", "metal")
    st.cache_resource.clear()  # the app reads its settings once
    assert "'metal' is not an engine TTService knows" in run("models.py").error[0].value


def test_models_page_lists_models_and_asks_the_service_to_download(web_env, store):
    at = run("models.py")
    assert at.title[0].value == "Models"
    assert "Jobs run on faster-whisper on the CPU (int8)" in at.caption[0].value
    assert "No TTService is running" in at.warning[0].value
    shown = [m.value for m in at.markdown]
    assert "**tiny.en** · :green-badge[bundled]" in shown and "**base** · :gray-badge[not installed]" in shown
    facts = [c.value for c in at.caption]
    assert any("English only · a job takes about" in text for text in facts)
    assert any("multilingual · a job takes about" in text for text in facts)
    assert any(text.startswith("Recommended here:") for text in facts)  # the rule, said
    assert sum("recommended here" in m for m in shown) <= 2  # a general model, and a Thai one
    at.button(key="download-base").click().run()
    [row] = store.list_downloads(active_only=True)
    assert row.repo_id == BASE_REPO and row.runner is Runner.UNCLAIMED and row.process_id is None  # asked for
    assert any("Downloading" in s.value for s in at.subheader)


def test_models_page_refuses_a_missing_repo_and_adds_a_folder(web_env, store, base_model_dir, settings):
    at = run("models.py")
    at.text_input[0].set_value("nobody/nothing")
    at.button[0].click().run()
    assert "There is no model nobody/nothing on the hub" in at.error[0].value
    at.text_input[0].set_value(str(base_model_dir))
    at.button[0].click().run()
    assert "Added" in at.success[0].value
    assert str(base_model_dir) in run("transcribe.py").selectbox[0].options


def test_models_page_removes_an_installed_model_after_confirmation(web_env, store):
    download.fetch(catalog.resolve(TINY_REPO), lambda done, total: None)
    at = run("models.py")
    at.button(key=f"remove-{TINY_REPO}").click().run()
    assert "Remove" in at.warning[-1].value
    at.button(key=f"yes-remove-{TINY_REPO}").click().run()
    assert cache.installed_folder(catalog.resolve(TINY_REPO)) is None


def test_transcribe_page_offers_installed_models_and_every_language(web_env, store):
    at = run("transcribe.py")
    model, language, speakers, engine = at.selectbox
    assert model.value == "tiny.en" and "base" not in model.options
    assert len(language.options) == 101 and language.options[0] == "Auto-detect"
    assert "Thai (th)" in language.options
    assert speakers.options == ["Do not label", "Label, any number", "2", "3", "4", "5", "6"]
    assert engine.options[1:] == ["faster-whisper", "whisper.cpp"]


def test_history_shows_a_job_waiting_for_its_model(web_env, store):
    job_id = store.create_job("jfk.wav", str(JFK_WAV), TranscribeOptions(model="base"))
    download_id, _ = store.start_download("base", BASE_REPO, Runner.SERVICE)
    store.download_progress(download_id, 50 * 2**20, 100 * 2**20)
    listed = run("history.py")
    assert any(
        "Waiting for the model base to download: 50% (50 of 100 MB)." in c.value for c in listed.caption
    )
    panel = run("history.py", job=job_id)
    assert "Waiting for the model base to download" in panel.info[0].value
    assert store.get_job(job_id).status is JobStatus.QUEUED


def test_transcribe_page_says_when_every_model_knows_only_english(web_env, store, monkeypatch):
    """Only the bundled tiny.en is installed: the page says so and offers the multilingual model
    recommended here (base, under a limit that leaves out the larger ones); one click asks the
    service to download it, and then it is in the page's list of models."""
    monkeypatch.setenv("TTSERVICE_MEMORY_LIMIT_MB", "2000")  # base batched needs 1.8 GB, small 3 GB,
    monkeypatch.setenv("TTSERVICE_CPU_THREADS", "4")  # with 4 threads: batches of 8 clips
    at = run("transcribe.py")
    [notice] = [i.value for i in at.info if "knows only English" in i.value]
    assert "such as base, recommended here" in notice
    [offer] = [b for b in at.button if b.label.startswith("Download base")]
    offer.click().run()
    [row] = store.list_downloads(active_only=True)
    assert row.repo_id == BASE_REPO and row.runner is Runner.UNCLAIMED  # the service takes it
    download.fetch(catalog.resolve("base"), lambda done, total: None)  # as the service would
    assert "base" in run("transcribe.py").selectbox[0].options


def test_thai_with_a_general_model_offers_the_thai_fine_tune_that_fits(
    web_env, store, settings, hub, transformers_models
):
    """Thai chosen with a model not tuned for it: the page, and the CLI, name the Thai fine-tune
    recommended here; one click on the page asks for its download."""
    at = run("transcribe.py")
    at.selectbox[1].set_value("th")
    at.button[0].click().run()  # Start (without a file: the advice comes all the same)
    [notice] = [i.value for i in at.info if "For Thai, the Thai fine-tune" in i.value]
    name = notice.split("fine-tune ")[1].split()[0]
    assert name in catalog.FINE_TUNES and ("Common Voice 13" in notice or "CER" in notice)
    repo = catalog.FINE_TUNES[name].repo_id
    hub.repos[repo] = Repo(repo, transformers_models["json"])  # a stand-in on the local hub
    [offer] = [b for b in at.button if b.label.startswith(f"Download {name}")]
    offer.click().run()
    [row] = store.list_downloads(active_only=True)
    assert row.repo_id == repo and row.runner is Runner.UNCLAIMED
    cli = ttservice(settings, "submit", str(JFK_WAV), "--language", "th", "--model", "base")
    assert cli.returncode == 0 and f"For Thai, the Thai fine-tune {name} fits this machine" in cli.stderr
    english = ttservice(settings, "submit", str(JFK_WAV), "--model", "base")
    assert "For Thai" not in english.stderr
