"""The Thai and English catalogs, the language a session gets, and every page in both languages."""

import pytest

from ttservice.exceptions import MediaError
from ttservice.interfaces.web import i18n
from ttservice.jobs import JobStatus, Segment
from ttservice.messages import Message

from ...conftest import VIEWS
from ...conftest import run_page as run

NOT_WORDS = {"live.cpu", "models.cpu", "models.cpu_only"}  # "CPU" is "CPU" in Thai too
PAGES = ["transcribe.py", "history.py", "models.py", "statistics.py"]


def has_thai(text: str) -> bool:
    return any("\u0e00" <= c <= "\u0e7f" for c in text)


def test_both_catalogs_have_the_same_keys_and_placeholders():
    english, thai = i18n.catalog("en"), i18n.catalog("th")
    assert english.keys() == thai.keys()
    for key in english:
        assert i18n.placeholders(english[key]) == i18n.placeholders(thai[key]), key
        assert has_thai(thai[key]) or key in NOT_WORDS, key


def test_an_error_is_shown_in_the_sessions_language(monkeypatch):
    monkeypatch.setattr(i18n, "language", lambda: "th")
    assert i18n.error_text(MediaError("media.empty", name="talk 1.wav")) == "ไฟล์ talk 1.wav ว่างเปล่า"
    too_large = Message("media.too_large", name="a.wav", size_mb=3000, limit_mb=2048)
    assert i18n.error_text(too_large) == "ไฟล์ a.wav มีขนาด 3000 MB เกินขีดจำกัด 2048 MB"
    left = Message("job.stopped_because", why=Message("why.page_left"))
    assert i18n.error_text(left) == "หยุดแล้ว เพราะผู้ใช้ออกจากหน้าของงาน"
    # a sentence stored by an earlier version has no code: shown as it was written
    assert i18n.error_text("Something no catalog knows.") == "Something no catalog knows."
    monkeypatch.setattr(i18n, "language", lambda: "en")
    assert i18n.error_text(MediaError("media.empty", name="talk.wav")) == "The file talk.wav is empty."


@pytest.mark.parametrize(
    ("locale", "lang"), [("th", "th"), ("th-TH", "th"), ("en-GB", "en"), ("de-DE", None), (None, None)]
)
def test_the_browsers_language_decides_when_the_url_does_not(locale, lang):
    assert i18n.from_locale(locale) == lang


def finished(store, make_job, text):
    job_id = make_job()
    store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(0.0, 2.5, text)], 2.5, 1.0)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    return job_id


@pytest.mark.parametrize("lang", ["th", "en"])
def test_every_page_has_every_word_in_both_languages(web_env, store, make_job, lang):
    done = finished(store, make_job, "การประชุมงบประมาณ")
    failed = make_job()
    store.transition(failed, JobStatus.FAILED, error_message=Message("media.empty", name="x.wav"))
    queued = make_job()
    i18n.missing.clear()
    shown = {}
    for page, query in [(p, {}) for p in PAGES] + [
        ("history.py", {"job": done}),
        ("history.py", {"job": queued}),
    ]:
        at = run(page, lang=lang, **query)
        assert not at.exception, (page, at.exception)
        shown[page, tuple(query.values())] = at
    assert i18n.missing == set()
    titles = [at.title[0].value for at in shown.values()]
    assert all(has_thai(title) for title in titles) if lang == "th" else not any(map(has_thai, titles))
    history = shown["history.py", ()]
    failed_reason = "ไฟล์ x.wav ว่างเปล่า" if lang == "th" else "The file x.wav is empty."
    assert any(failed_reason in m.value for m in history.markdown)
    assert any(
        b.label == ("ดู" if lang == "th" else "View") for b in history.button if b.key == f"view-{done}"
    )


def test_the_sidebar_switch_keeps_the_language_in_the_url(web_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(VIEWS.parent / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Transcribe"
    at.button_group(key="lang-switch").set_value(None).run()  # a click on the chosen one keeps it
    assert at.title[0].value == "Transcribe" and at.button_group(key="lang-switch").value == "en"
    at.button_group(key="lang-switch").set_value("th").run()  # the segmented control
    assert at.query_params["lang"] in ("th", ["th"])
    assert at.title[0].value == "ถอดเสียง"
