"""Settings: each declared once, and everything that lists them made from that declaration."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttservice.config import SETTINGS, Settings, settings_markdown
from ttservice.exceptions import TTServiceError
from ttservice.supervision.process_manager import worker_env

DOCS = Path(__file__).parents[1] / "docs" / "settings.md"


def test_docs_settings_is_made_from_the_declarations():
    assert DOCS.read_text() == settings_markdown(), (
        "docs/settings.md is stale: python -m ttservice.config > docs/settings.md"
    )


def test_each_setting_is_parsed_by_its_declared_type(tmp_path):
    environ = {
        "TTSERVICE_DATA_DIR": str(tmp_path / "here" / ".." / "there"),
        "TTSERVICE_VAD": "off",
        "TTSERVICE_MAX_CONCURRENT_JOBS": "7",
        "TTSERVICE_ORPHAN_TIMEOUT": "12.5",
        "TTSERVICE_MODEL": "base",
    }
    settings = Settings.from_env(environ)
    assert settings.data_dir == tmp_path / "there"
    assert settings.vad is False and settings.max_concurrent_jobs == 7
    assert settings.orphan_timeout == 12.5 and settings.model == "base"
    assert settings.orphan_check_interval == 12.5 / 2
    defaults = Settings.from_env({})
    for declared in SETTINGS:
        assert isinstance(getattr(defaults, declared.name), declared.kind), declared.name
    with pytest.raises(TTServiceError, match="TTSERVICE_KILL_GRACE='soon' is not a valid value"):
        Settings.from_env({"TTSERVICE_KILL_GRACE": "soon"})


def test_a_workers_environment_gives_back_the_same_settings_without_the_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSERVICE_API_KEY", "from-the-shell")
    settings = Settings.from_env({}, data_dir=tmp_path, api_key="secret", vad=False, beam_size=3)
    env = worker_env(settings)
    assert "TTSERVICE_API_KEY" not in env
    assert Settings.from_env(env) == Settings.from_env({}, data_dir=tmp_path, vad=False, beam_size=3)
    assert worker_env(settings, secrets=True)["TTSERVICE_API_KEY"] == "secret"
