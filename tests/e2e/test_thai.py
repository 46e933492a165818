"""The main flow in Thai in a real browser (`?lang=th`), at a desktop and a phone width, with screenshots."""

from __future__ import annotations

import pytest

from ttservice.jobs import JobStatus, open_store

from ..conftest import JFK_WAV, wait_for
from .conftest import body_text, click_button, cut_labels, find, headings, open_page, screenshot, wait_text

pytestmark = pytest.mark.model


def thai_letters(text: str) -> int:
    return sum("\u0e00" <= c <= "\u0e7f" for c in text)


def test_the_main_flow_in_thai(server, browser):
    open_page(browser, server.url + "/?lang=th", "ถอดเสียง")
    wait_text(browser, "หยุดงานนี้เมื่อฉันออกจากหน้านี้")
    screenshot(browser, "th_transcribe")
    find(browser, "input[type='file']").send_keys(str(JFK_WAV))
    wait_text(browser, JFK_WAV.name)
    click_button(browser, "เริ่มถอดเสียง")
    wait_text(browser, "งานของคุณ")
    store = open_store(server.settings)
    job_id = wait_for(lambda: store.list_jobs(limit=1), 30, what="job row")[0].id
    wait_for(lambda: store.get_job(job_id).finished, 120, what="jfk finished")
    assert store.get_job(job_id).status is JobStatus.COMPLETED

    # the sidebar's pages keep the language: the navigation drops the URL's query, the app puts it back
    find(browser, "a[data-testid='stSidebarNavLink'][href$='/history']").click()
    wait_for(lambda: "ประวัติ" in headings(browser), 30)
    wait_for(lambda: "lang=th" in browser.current_url, 30, what="lang=th kept in the URL")
    wait_text(browser, "เสร็จแล้ว")
    screenshot(browser, "th_history")
    assert cut_labels(browser) == []  # every label whole ("ดู" included)
    click_button(browser, "ดู")
    wait_text(browser, "ask not what your country can do for you")
    wait_text(browser, "ดาวน์โหลด SRT")
    screenshot(browser, "th_finished_job")

    for path, heading in (("/models", "โมเดล"), ("/statistics", "สถิติ")):
        open_page(browser, server.url + path + "?lang=th", heading)
        wait_text(browser, "มากับโปรแกรม" if path == "/models" else "เสร็จแล้ว")
        screenshot(browser, "th" + path.replace("/", "_"))
    browser.set_window_size(1400, 1500)  # the whole page, chart included
    find(browser, "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg")
    screenshot(browser, "th_statistics_whole")
    assert thai_letters(body_text(browser)) > 50

    browser.set_window_size(400, 900)  # a phone, in both languages
    for lang, words in (
        ("th", ("เริ่มถอดเสียง", "ดู", "มากับโปรแกรม", "ความเร็วตามโมเดล")),
        ("en", ("Start transcription", "View", "bundled", "Speed by model")),
    ):
        for name, path, shown in (
            ("transcribe", "/?", words[0]),
            ("history", "/history?", words[1]),
            ("job", f"/history?job={job_id}&", "ask not what your country"),
            ("models", "/models?", words[2]),
            ("statistics", "/statistics?", words[3]),
        ):
            browser.get(f"{server.url}{path}lang={lang}")
            wait_text(browser, shown)
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 400 + 1, f"{path} is {width} px wide in a 400-px window"
            assert cut_labels(browser) == [], (lang, path)
            screenshot(browser, f"{lang}_phone_{name}")


def test_the_language_switch_turns_every_page_thai_and_back(server, browser):
    open_page(browser, server.url, "Transcribe")
    click_button(browser, "ไทย")
    wait_for(lambda: "ถอดเสียง" in headings(browser), 30)
    assert "lang=th" in browser.current_url
    click_button(browser, "English")
    wait_for(lambda: "Transcribe" in headings(browser), 30)
    assert "lang=en" in browser.current_url


def test_a_thai_browser_gets_thai_unless_the_address_says_otherwise(server, thai_browser):
    open_page(thai_browser, server.url, "ถอดเสียง")  # st.context.locale: th-TH
    open_page(thai_browser, server.url + "/history", "ประวัติ")
    open_page(thai_browser, server.url + "/?lang=en", "Transcribe")
