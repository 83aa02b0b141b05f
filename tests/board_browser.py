"""The status board in a real headless browser: Debian's chromium through chromium-driver, via
Selenium. Shared by tests/test_status_browser.py (known synthetic data) and
tests/lab/test_lab_status_board.py (a real ``netmon run`` against the facility lab).

* :func:`chrome`     -- a headless chromium that logs every request it makes
* :func:`shot_folder` -- ``$NETMON_STATUS_SCREENSHOTS`` if set, else a fresh tmp folder
* :func:`visit`      -- open a page and assert that nothing came from outside the server
* :func:`shoot`      -- a PNG of the whole page (``<prefix>-<page>-<lang>.png``)
* :func:`open_red_day_by_keyboard` -- Tab to a site's red day and open it with Enter

A module that imports this one is skipped (failed in CI, tests/conftest.py) without chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (scripts/setup --test)",
)
OUTAGE_RED = "rgba(197, 34, 31, 1)"  # the red of the stylesheet (--outage)


def _selenium() -> Any:
    return pytest.importorskip("selenium.webdriver")


@contextlib.contextmanager
def chrome() -> Iterator[Any]:
    """Headless chromium (1280 px wide) with its performance log on; quit at the end."""
    webdriver = _selenium()
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
    try:
        yield driver
    finally:
        driver.quit()


def shot_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
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


def visit(driver: Any, base: str, path: str, lang: str) -> None:
    """Open ``base + path`` in ``lang``, wait for its fonts; every request the page made and
    every resource it names is on ``base``."""
    requested(driver)  # drop what came before
    driver.get(f"{base}{path}?lang={lang}")
    driver.execute_script("return document.fonts.ready")
    urls = requested(driver) + dom_resources(driver)
    outside = [u for u in urls if not u.startswith(base + "/") and not u.startswith("data:")]
    assert urls and not outside, outside


def main_text(driver: Any) -> str:
    by = pytest.importorskip("selenium.webdriver.common.by").By
    text: str = driver.find_element(by.TAG_NAME, "main").text
    return text


def shoot(driver: Any, folder: Path, page: str, lang: str, prefix: str = "status") -> Path:
    """The whole page as ``folder/<prefix>-<page>-<lang>.png`` (the window grown to fit it)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(700, min(int(height) + 140, 2400)))
    path = folder / f"{prefix}-{page}-{lang}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    driver.set_window_size(1280, 1100)
    return path


def open_red_day_by_keyboard(driver: Any, site_id: str) -> Any:
    """Tab from the top of the page to the site's red day (bounded), press Enter; its popup."""
    by = pytest.importorskip("selenium.webdriver.common.by").By
    keys = pytest.importorskip("selenium.webdriver.common.keys").Keys
    red = driver.find_element(by.CSS_SELECTOR, f"#site-{site_id} details.s-outage > summary")
    driver.find_element(by.TAG_NAME, "body").click()
    for _ in range(60):
        driver.switch_to.active_element.send_keys(keys.TAB)
        if driver.switch_to.active_element == red:
            break
    assert driver.switch_to.active_element == red, "the red day is not reachable by Tab"
    red.send_keys(keys.ENTER)
    pop = red.find_element(by.XPATH, "..").find_element(by.CLASS_NAME, "pop")
    assert pop.is_displayed()
    return pop


def devanagari_font_loaded(driver: Any) -> bool:
    """Devanagari is drawn with the font netmon serves, not a system one."""
    loaded = driver.execute_script(
        "return [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)"
    )
    return any("netmon Devanagari" in f for f in loaded)
