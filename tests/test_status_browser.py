"""The status board in a real headless browser (Debian's chromium through chromium-driver, via
Selenium) over a real netmon server (uvicorn on loopback) and the known data of
tests/status_drive.py: in English and Hindi, what a person sees on the state, district and site
pages — the cut site's red day, reached with the keyboard and opened, lists its outage with
start, end and reason; the Hindi labels, drawn in the bundled Devanagari font — and that no
page asks for anything outside the netmon server (every request in chromium's performance log,
every resource in the DOM).

Screenshots (PNG) of the three pages in both languages are written to
``$NETMON_STATUS_SCREENSHOTS`` if set, else to the test's tmp_path (``status-<page>-<lang>.png``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.store import Store
from tests.status_drive import CUT_SITE, drive

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (scripts/setup --test)",
)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

PAGES = {"state": "/status", "district": "/status/district/Ranchi",
         "site": f"/status/site/{CUT_SITE}"}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """netmon's app over the known data, served by uvicorn on 127.0.0.1 (a free port)."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'netmon.db'}")
    store.migrate()
    monitor = drive(store)
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = webdriver.ChromeService(executable_path=DRIVER)
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("NETMON_STATUS_SCREENSHOTS")
    folder = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def requested(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call (chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def dom_resources(driver: Any) -> list[str]:
    script = ("return [...document.querySelectorAll('[src],link[href],[srcset]')]"
              ".map(e => e.src || e.href || e.srcset)"
              ".concat(performance.getEntriesByType('resource').map(e => e.name));")  # fmt: skip
    found: list[str] = driver.execute_script(script)
    return found


def visit(driver: Any, base: str, page: str, lang: str) -> None:
    requested(driver)  # drop what came before
    driver.get(f"{base}{PAGES[page]}?lang={lang}")
    driver.execute_script("return document.fonts.ready")
    urls = requested(driver) + dom_resources(driver)
    outside = [u for u in urls if not u.startswith(base + "/") and not u.startswith("data:")]
    assert urls and not outside, outside


def shoot(driver: Any, folder: Path, page: str, lang: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(700, min(int(height) + 140, 2400)))
    path = folder / f"status-{page}-{lang}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    driver.set_window_size(1280, 1100)


def open_red_day_by_keyboard(driver: Any) -> Any:
    """Tab from the top of the page to the cut site's red day (bounded) and press Enter."""
    red = driver.find_element(By.CSS_SELECTOR, f"#site-{CUT_SITE} details.s-outage > summary")
    driver.find_element(By.TAG_NAME, "body").click()
    for _ in range(60):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        if driver.switch_to.active_element == red:
            break
    assert driver.switch_to.active_element == red, "the red day is not reachable by Tab"
    red.send_keys(Keys.ENTER)
    pop = red.find_element(By.XPATH, "..").find_element(By.CLASS_NAME, "pop")
    assert pop.is_displayed()
    return pop


WORDS = {
    "en": {"state": ["Wi-Fi status board: Jharkhand", "Fully functional now, by district",
                     "18 days left to the deadline (30 Nov 2026)", "No site is down now."],
           "outage": ["11 Nov 2026: Outage", "01:05", "01:15",
                      "The internet link (wan-1) is not reachable"],
           "district": "District Ranchi", "site": "Health Facility Registry (HFR) ID"},
    "hi": {"state": ["वाई-फाई स्थिति बोर्ड: झारखंड", "अभी पूरी तरह कार्यशील, जिलेवार",
                     "समय-सीमा (30 नवंबर 2026) में 18 दिन शेष", "अभी कोई सुविधा बंद नहीं है।"],
           "outage": ["11 नवंबर 2026: बंद रहा", "01:05", "01:15",
                      "इंटरनेट लिंक (wan-1) से संपर्क नहीं हो रहा"],
           "district": "जिला रांची", "site": "हेल्थ फैसिलिटी रजिस्ट्री (एचएफआर) आईडी"},
}  # fmt: skip


@pytest.mark.parametrize("lang", ["en", "hi"])
def test_pages_as_a_person_sees_them(server: str, browser: Any, shots: Path, lang: str) -> None:
    words = WORDS[lang]
    visit(browser, server, "state", lang)
    seen = browser.find_element(By.TAG_NAME, "main").text
    assert all(w in seen for w in words["state"]), seen
    shoot(browser, shots, "state", lang)

    visit(browser, server, "district", lang)
    assert browser.find_element(By.TAG_NAME, "h1").text == words["district"]
    pop = open_red_day_by_keyboard(browser)
    assert all(w in pop.text for w in words["outage"]), pop.text
    red = browser.find_element(By.CSS_SELECTOR, f"#site-{CUT_SITE} details.s-outage")
    colour = red.value_of_css_property("background-color")
    assert colour == "rgba(197, 34, 31, 1)"  # the red of the stylesheet (--outage)
    shoot(browser, shots, "district", lang)

    visit(browser, server, "site", lang)
    assert words["site"] in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.CSS_SELECTOR, "details.s-outage > summary").click()
    assert all(w in browser.find_element(By.CLASS_NAME, "pop").text for w in words["outage"])
    if lang == "hi":  # Devanagari drawn with the font netmon serves, not a system one
        loaded = browser.execute_script(
            "return [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)"
        )
        assert any("netmon Devanagari" in f for f in loaded), loaded
    shoot(browser, shots, "site", lang)
