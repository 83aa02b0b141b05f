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
from tests.board_browser import (
    NEEDS_CHROMIUM,
    OUTAGE_RED,
    chrome,
    devanagari_font_loaded,
    main_text,
    open_red_day_by_keyboard,
    shoot,
    shot_folder,
    visit,
)
from tests.status_drive import CUT_SITE, drive

pytestmark = NEEDS_CHROMIUM
By = pytest.importorskip("selenium.webdriver.common.by").By
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
    with chrome() as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shot_folder(tmp_path_factory)


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
    visit(browser, server, PAGES["state"], lang)
    seen = main_text(browser)
    assert all(w in seen for w in words["state"]), seen
    shoot(browser, shots, "state", lang)

    visit(browser, server, PAGES["district"], lang)
    assert browser.find_element(By.TAG_NAME, "h1").text == words["district"]
    pop = open_red_day_by_keyboard(browser, CUT_SITE)
    assert all(w in pop.text for w in words["outage"]), pop.text
    red = browser.find_element(By.CSS_SELECTOR, f"#site-{CUT_SITE} details.s-outage")
    assert red.value_of_css_property("background-color") == OUTAGE_RED
    shoot(browser, shots, "district", lang)

    visit(browser, server, PAGES["site"], lang)
    assert words["site"] in main_text(browser)
    browser.find_element(By.CSS_SELECTOR, "details.s-outage > summary").click()
    assert all(w in browser.find_element(By.CLASS_NAME, "pop").text for w in words["outage"])
    if lang == "hi":
        assert devanagari_font_loaded(browser)
    shoot(browser, shots, "site", lang)
