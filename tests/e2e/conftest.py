"""A real `ttservice serve` on a free port and a headless Debian Chromium driving it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ..conftest import env_for, make_settings, stop_process

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not become healthy")


class Server:
    def __init__(self, tmp_path: Path, **overrides) -> None:
        self.settings = make_settings(tmp_path / "data", **overrides)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / "serve.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ttservice", "serve", "--port", str(self.port), "--no-api"],
            env=env_for(self.settings),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_healthy(self.url)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path, cpu_threads=1)
    yield srv
    srv.stop()


@pytest.fixture
def slow_server(tmp_path):
    """A server whose jobs take long enough to watch, however fast the machine: one thread, one
    window at a time (batched decoding commits its segments a batch of clips at a time), float32
    and beam 5 (tiny.en decoded four minutes in 8.6 s even so with greedy decoding)."""
    srv = Server(tmp_path, cpu_threads=1, batch_size=0, compute_type="float32", beam_size=5)
    yield srv
    srv.stop()


@pytest.fixture
def browser(tmp_path):
    driver = start_browser(tmp_path)
    yield driver
    driver.quit()


@pytest.fixture
def thai_browser(tmp_path):
    """A browser whose language is Thai (navigator.language th-TH)."""
    driver = start_browser(tmp_path, "th-TH")
    yield driver
    driver.quit()


def start_browser(tmp_path: Path, language: str | None = None):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    if language:
        options.add_argument(f"--lang={language}")
        prefs["intl.accept_languages"] = language
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    driver.shots = tmp_path
    return driver


def body_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_text(driver, text: str, timeout: float = 60) -> None:
    WebDriverWait(driver, timeout, 0.3).until(lambda d: text in body_text(d), f"text {text!r}")


def click_button(driver, label: str, timeout: float = 30) -> None:
    xpath = f"//button[normalize-space(.)={label!r}]"
    button = WebDriverWait(driver, timeout, 0.3).until(
        lambda d: next(
            (b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed() and b.is_enabled()), None
        ),
        f"button {label!r}",
    )
    button.click()


def find(driver, css: str, timeout: float = 30):
    return WebDriverWait(driver, timeout, 0.3).until(
        lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None), f"element {css}"
    )


def headings(driver) -> list[str]:
    """The page's h1 texts; an element Streamlit replaced while it was read counts as none."""
    found = []
    for h in driver.find_elements(By.TAG_NAME, "h1"):
        try:
            found.append(h.text)
        except StaleElementReferenceException:
            continue
    return found


def open_page(driver, url: str, heading: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 60, 0.3).until(lambda d: heading in headings(d), f"page {heading}")


def screenshot(driver, name: str) -> Path:
    path = driver.shots / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def cut_labels(driver) -> list[str]:
    """The buttons on the page whose label does not fit (drawn cut short, "V.." for "View")."""
    return driver.execute_script(
        """return [...document.querySelectorAll('button')]
            .filter(b => { const r = b.getBoundingClientRect();  // on screen (not the collapsed sidebar)
                           return r.width > 0 && r.right > 0 && r.left < window.innerWidth; })
            .filter(b => [b, ...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
            .map(b => b.innerText)"""
    )
