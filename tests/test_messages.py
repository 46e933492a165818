"""The registry of messages: every code in both catalogs with the same parameters, every raise
site naming a code of the registry with every parameter its sentence needs, nothing written in
English where an error is raised."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ttservice
from ttservice.exceptions import MediaError, TTServiceError
from ttservice.messages import LANGUAGES, Message, catalog, locale_language, placeholders, text

PACKAGE = Path(ttservice.__file__).parent
# What takes a code (or a Message) as its first argument.
TAKES_A_CODE = {
    "Message",
    "TTServiceError",
    "MediaError",
    "MediaTooLarge",
    "NotMedia",
    "StoreError",
    "StoreUnavailable",
    "ConnectionLost",
    "MigrationError",
    "RequestError",
    "ModelError",
    "ServiceAlreadyRunning",
}
# Templates that are their parameters only, the same in every language.
NO_WORDS = {"process.failed", "api.invalid_value", "api.http_error"}


def has_thai(value: str) -> bool:
    return any("\u0e00" <= c <= "\u0e7f" for c in value)


def calls() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in TAKES_A_CODE and node.args:
                found.append((f"{where}:{node.lineno}", node))
    return found


def codes_of(node: ast.expr) -> list[str] | None:
    """The code(s) a first argument names: a literal, or either side of a conditional."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        sides = [codes_of(node.body), codes_of(node.orelse)]
        return None if None in sides else [c for side in sides for c in side]
    return None


def test_both_catalogs_have_every_code_with_the_same_parameters():
    english = catalog("en")
    for lang in LANGUAGES:
        assert catalog(lang).keys() == english.keys(), lang
        for code, template in catalog(lang).items():
            assert placeholders(template) == placeholders(english[code]), (lang, code)
    for code, template in catalog("th").items():
        assert has_thai(template) or code in NO_WORDS or template.startswith(("TTSERVICE_", "{")), code


def test_every_raise_site_names_a_code_and_gives_every_parameter_its_sentence_needs():
    registry = catalog("en")
    problems = []
    for where, call in calls():
        first = call.args[0]
        if isinstance(first, ast.JoinedStr):
            problems.append(f"{where}: a sentence written where it is raised")
            continue
        codes = codes_of(first)
        if codes is None:
            continue  # a Message (or an error's) passed on
        given = {k.arg for k in call.keywords}
        for code in codes:
            if code not in registry:
                problems.append(f"{where}: {code!r} is not in the registry")
            elif given != placeholders(registry[code]):
                problems.append(f"{where}: {code} needs {placeholders(registry[code])}, given {given}")
    assert problems == []


def test_every_code_of_the_registry_is_used():
    registry = set(catalog("en"))
    used = {
        node.value
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in registry
    }
    assert registry - used == set()


def test_a_message_renders_in_each_language_with_its_reasons_inside():
    reason = Message("job.orphaned", why=Message("why.no_heartbeat_stopped", seconds=301.4))
    assert reason.text() == "The job was orphaned: no heartbeat for 301 s, so its worker was stopped."
    assert reason.text("th") == "งานนี้ถูกทิ้งค้าง: ไม่มีสัญญาณชีพ 301 วินาที จึงหยุดกระบวนการถอดเสียง"
    assert reason.text("de") == reason.text("en")  # a language without a catalog reads English
    killed = Message("process.failed", why=Message("why.worker_killed", signal="SIGKILL"))
    assert str(killed) == "The worker process was killed by SIGKILL."  # a reason made a sentence
    download = Message("process.failed", why=Message("why.download_killed", signal="SIGKILL"))
    lost = Message("model.could_not_download", model="base", why=download)
    assert str(lost) == "The model base could not be downloaded: the download process was killed by SIGKILL."
    assert Message.from_json(lost.to_json()) == lost
    assert Message.from_json('{"code": "no.such.code", "params": {}}') is None  # a newer version's


def test_an_error_is_its_message():
    error = MediaError("media.empty", name="x.wav")
    assert str(error) == "The file x.wav is empty." and error.code == "media.empty"
    assert text(error, "th") == "ไฟล์ x.wav ว่างเปล่า"
    assert text("An earlier version's sentence.", "th") == "An earlier version's sentence."
    with pytest.raises(KeyError):
        TTServiceError("no.such.code")


@pytest.mark.parametrize(
    ("environ", "lang"),
    [
        ({"LANG": "th_TH.UTF-8"}, "th"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "th_TH.UTF-8"}, "th"),
        ({"LC_ALL": "C.UTF-8", "LANG": "th_TH.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_terminals_language_is_its_locales(environ, lang):
    assert locale_language(environ) == lang
