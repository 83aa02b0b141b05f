"""The status board in a real headless chromium over a real ``netmon run`` against the facility
lab, with a known fault (root): the uplink of one of three lab CHCs is cut (its wan-1 and what
is behind it answer nothing) from ``t0`` to ``t1``, times the test notes itself.

What a person sees, in English and Hindi (tests/board_browser.py, as tests/test_status_browser.py
does over synthetic data): while it is cut the state page lists it among the sites down now with
its reason; after it is back, today's day of its bar on the district page is red (today is
accounted live: no rollup has run yet in netmon's first minute), reached by Tab and opened with
Enter it lists one outage from ``t0`` to ``t1`` (as HH:MM IST, within the measurement's edges)
with the reason "the internet link (wan-1) is not reachable"; the other sites' today is green;
the site page shows the same outage, the devices, the verdict history and the announced
maintenance (a one-off window and a recurring one); Hindi labels, names from the inventory's
``name_hi`` and the bundled Devanagari font. No page loads anything from outside the server.

The demo (``netmon lab demo``, scripts/demo) opens with the board: its URL first, then a browser.

Screenshots: ``status-lab-{state,district,site}-{en,hi}.png`` in ``$NETMON_STATUS_SCREENSHOTS``
(else tmp_path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from netmon.lab import Lab
from netmon.lab import cli as lab_cli
from netmon.lab.model import parse_scenario
from netmon.lab.runner import NetmonProcess, free_port
from netmon.status.catalogue import Words
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
from tests.lab.conftest import recording_browser, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow, NEEDS_CHROMIUM]
By = pytest.importorskip("selenium.webdriver.common.by").By
IST = ZoneInfo("Asia/Kolkata")
CUT_SITE, OK_SITE, OTHER_SITE = "sb-bundu", "sb-angara", "sb-torpa"
# An outage starts with the first probe that lost echoes (up to one 2 s interval early) and ends
# when the next evaluation (every 5 s) sees the uplink answer (tests/lab/test_lab_availability).
EDGE = 7.0
HOLD = 20.0  # seconds the uplink stays cut, at least
SITES = [  # id, district, name, name_hi, HFR ID
    (CUT_SITE, "Ranchi", "CHC Bundu (lab)", "सामुदायिक स्वास्थ्य केंद्र, बुंडू (लैब)", "IN2099080101"),
    (OK_SITE, "Ranchi", "CHC Angara (lab)", "सामुदायिक स्वास्थ्य केंद्र, अनगड़ा (लैब)", "IN2099080102"),
    (OTHER_SITE, "Khunti", "CHC Torpa (lab)", "सामुदायिक स्वास्थ्य केंद्र, तोरपा (लैब)", "IN2099080103"),
]  # fmt: skip
WORDS = {
    "en": {"state": ["Wi-Fi status board: Jharkhand", "Sites down now", "CHC Bundu (lab)"],
           "district": "District Ranchi", "outage": "Outage",
           "reason": "The internet link (wan-1) is not reachable",
           "site": ["Health Facility Registry (HFR) ID\nIN2099080101", "Announced maintenance",
                    "BSNL fibre splicing", "Every {day} at 03:00 (IST), for 1 h", "UPS battery check"]},
    "hi": {"state": ["वाई-फाई स्थिति बोर्ड: झारखंड", "अभी बंद सुविधाएँ",
                     "सामुदायिक स्वास्थ्य केंद्र, बुंडू (लैब)", "रांची"],
           "district": "जिला रांची", "outage": "बंद रहा",
           "reason": "इंटरनेट लिंक (wan-1) से संपर्क नहीं हो रहा",
           "site": ["हेल्थ फैसिलिटी रजिस्ट्री (एचएफआर) आईडी\nIN2099080101", "घोषित रखरखाव",
                    "BSNL fibre splicing", "हर {day} 03:00 (IST) पर, 1 घंटे के लिए",
                    "UPS battery check"]},
}  # fmt: skip
WEEKDAYS = {"en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
            "hi": ("सोमवार", "मंगलवार", "बुधवार", "गुरुवार", "शुक्रवार", "शनिवार", "रविवार")}  # fmt: skip


CHOSEN: dict[str, int] = {}  # the recurring window's weekday, as dress() announced it


def window_day(today: dt.date) -> dt.date:
    """The weekday of the recurring window: not today (the cut must not fall inside it)."""
    return today + dt.timedelta(days=3)


def scenario(site: str, district: str, name: str, name_hi: str, hfr: str) -> str:
    return f"""
id: {site}
description: status board drill
site:
  id: {site}
  name: {name}
  name_hi: {name_hi}
  district: {district}
  type: chc
  hfr_id: {hfr}
  devices:
    - {{name: wan-1, role: wan}}
    - {{name: sw-01, role: switch, parent: wan-1}}
    - {{name: ap-01, role: ap, parent: sw-01}}
    - {{name: ap-02, role: ap, parent: sw-01}}
"""


def dress(inventory: Path, today: dt.date) -> None:
    """What an official's inventory has and the lab's lacks: Hindi names of the state and
    districts, a rollout from today, and maintenance announced for the cut site (neither window now)."""
    doc = yaml.safe_load(inventory.read_text())
    doc["state_hi"] = "झारखंड"
    doc["districts"] = {"Ranchi": {"name_hi": "रांची"}, "Khunti": {"name_hi": "खूंटी"}}
    doc["rollout"] = {"start": today.isoformat(),
                      "deadline": (today + dt.timedelta(days=40)).isoformat()}  # fmt: skip
    later = dt.datetime.combine(today + dt.timedelta(days=3), dt.time(10, 0), IST)
    CHOSEN["weekday"] = window_day(today).weekday()  # as announced (a test across midnight)
    (cut,) = [s for s in doc["sites"] if s["id"] == CUT_SITE]
    cut["maintenance"] = [
        {"start": later.isoformat(), "end": (later + dt.timedelta(hours=2)).isoformat(),
         "reason": "BSNL fibre splicing"},
        {"every": "weekly", "days": [window_day(today).strftime("%a").lower()], "start": "03:00",
         "duration": "1h",
         "reason": "UPS battery check"},
    ]  # fmt: skip
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def site(server: NetmonProcess, site_id: str) -> dict[str, Any]:
    body: dict[str, Any] = server.get(f"/api/v1/sites/{site_id}")
    return body


def closed_outages(server: NetmonProcess, start: float) -> list[dict[str, Any]]:
    """The cut site's outages since ``start`` that have ended (as the store has them)."""
    now = time.time()
    query = urllib.parse.urlencode({"from": iso(start), "to": iso(now)})
    body = server.get(f"/api/v1/sites/{CUT_SITE}/availability?{query}")
    return [o for o in body["outages"] if ends(o) < now - 2]


def ends(outage: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(outage["end"]).timestamp()


def recovered_at(server: NetmonProcess) -> float:
    """When the cut site's verdict left ``down`` (its history, newest first)."""
    changes = server.get(f"/api/v1/sites/{CUT_SITE}/history")["data"]
    k = next(i for i, c in enumerate(changes) if c["verdict"] == "down")
    assert k > 0, changes
    return dt.datetime.fromisoformat(changes[k - 1]["since"]).timestamp()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def minutes_near(ts: float) -> set[str]:
    """Every HH:MM (IST) a time within EDGE of ``ts`` may be shown as."""
    return {dt.datetime.fromtimestamp(ts + k, IST).strftime("%H:%M") for k in (-EDGE, 0, EDGE)}


@pytest.fixture(scope="module")
def board(
    start_lab: Callable[..., Lab], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Lab, NetmonProcess]]:
    """The lab's three CHCs, dressed, and ``netmon run`` judging all three fully functional."""
    lab = start_lab([parse_scenario(scenario(*s)) for s in SITES], tmp_path_factory.mktemp("lab"))
    dress(lab.inventory_path, dt.datetime.now(IST).date())
    workdir = tmp_path_factory.mktemp("netmon")
    server = NetmonProcess(lab.inventory_path, workdir, env=lab.netmon_env)
    try:
        server.wait_ready()
        ids = [s[0] for s in SITES]
        up = wait_until(
            lambda: all(site(server, i)["verdict"] == "fully_functional" for i in ids), 30
        )
        assert up, server.log()
        yield lab, server
    finally:
        assert server.stop() == 0, server.log()


def test_a_cut_in_the_lab_as_officials_see_it(
    board: tuple[Lab, NetmonProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lab, server = board
    shots = shot_folder(tmp_path_factory)
    with chrome() as browser:
        t0 = time.time()
        lab.set_fault(f"{CUT_SITE}/wan-1", down=True, propagate=True)
        try:
            assert wait_until(lambda: site(server, CUT_SITE)["verdict"] == "down", 20), server.log()
            for lang in ("en", "hi"):
                see_state_with_the_site_down(browser, server.url, shots, lang)
            wait_until(lambda: time.time() >= t0 + HOLD, HOLD)  # a cut of some length
        finally:
            t1 = time.time()
            lab.set_fault(f"{CUT_SITE}/wan-1", down=False)
        assert wait_until(lambda: site(server, CUT_SITE)["verdict"] != "down", 30), server.log()
        back = recovered_at(server)
        # the store has the change that ended the outage (a read before it would end the
        # outage where the stored coverage ends)
        stored = lambda: [o for o in closed_outages(server, t0 - 60) if ends(o) == back]  # noqa: E731
        assert wait_until(lambda: bool(stored()), 20), server.log()
        (outage,) = closed_outages(server, t0 - 60)
        start = dt.datetime.fromisoformat(outage["start"]).timestamp()
        end = ends(outage)
        assert start == pytest.approx(t0, abs=EDGE) and end == pytest.approx(t1, abs=EDGE)
        day = dt.datetime.fromtimestamp(start, IST).date()
        for lang in ("en", "hi"):
            see_the_red_day(browser, server.url, shots, lang, day, (t0, t1))


def test_the_demo_opens_with_the_board(
    board: tuple[Lab, NetmonProcess],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``netmon lab demo`` (scripts/demo), once its netmon answers: the board's URL first,
    then the board opened in the browser ($BROWSER here: a script noting the URL)."""
    lab, _server = board
    browser, seen = recording_browser(tmp_path)
    monkeypatch.setenv("BROWSER", browser)
    args = argparse.Namespace(host="127.0.0.1", port=free_port(), duration=1.0, no_browser=False)
    assert lab_cli._run_netmon(lab, args) == 0
    out = capfd.readouterr().out
    url = f"http://127.0.0.1:{args.port}/status"
    assert f"The status board:  {url}" in out and "opened in a browser" in out
    assert out.index("The status board:") < out.index("the API:"), out
    assert seen.read_text() == url


def see_state_with_the_site_down(browser: Any, base: str, shots: Path, lang: str) -> None:
    visit(browser, base, "/status", lang)
    seen = main_text(browser)
    assert all(w in seen for w in WORDS[lang]["state"]), seen
    down = browser.find_element(By.CSS_SELECTOR, "#h-down + .scroll table").text
    assert WORDS[lang]["reason"] in down, down
    shoot(browser, shots, "state", lang, prefix="status-lab")


def see_the_red_day(
    browser: Any, base: str, shots: Path, lang: str, day: dt.date, cut: tuple[float, float]
) -> None:
    words, said_day = WORDS[lang], Words(lang, IST).date(day)  # type: ignore[arg-type]
    visit(browser, base, "/status/district/Ranchi", lang)
    assert browser.find_element(By.TAG_NAME, "h1").text == words["district"]
    pop = open_red_day_by_keyboard(browser, CUT_SITE)
    check_outage(pop.text, said_day, words, cut)
    red = browser.find_element(By.CSS_SELECTOR, f"#site-{CUT_SITE} details.s-outage")
    assert red.value_of_css_property("background-color") == OUTAGE_RED
    if day == dt.datetime.now(IST).date():  # today: the last day of the bar
        last = browser.find_elements(By.CSS_SELECTOR, f"#site-{CUT_SITE} .bar > .day")[-1]
        assert last == red
    fine = browser.find_element(By.ID, f"site-{OK_SITE}")
    assert not fine.find_elements(By.CSS_SELECTOR, ".s-outage")
    assert fine.find_elements(By.CSS_SELECTOR, ".bar > .day")[-1].get_attribute("class") == (
        "day run s-good"
    )
    shoot(browser, shots, "district", lang, prefix="status-lab")

    visit(browser, base, f"/status/site/{CUT_SITE}", lang)
    seen = main_text(browser)
    weekday = WEEKDAYS[lang][CHOSEN["weekday"]]
    assert all(w.format(day=weekday) in seen for w in words["site"]), seen
    assert "sw-01" in seen and "ap-02" in seen
    browser.find_element(By.CSS_SELECTOR, "details.s-outage > summary").click()
    check_outage(browser.find_element(By.CLASS_NAME, "pop").text, said_day, words, cut)
    if lang == "hi":
        assert devanagari_font_loaded(browser)
    shoot(browser, shots, "site", lang, prefix="status-lab")


def check_outage(text: str, day: str, words: dict[str, Any], cut: tuple[float, float]) -> None:
    """A red day's popup: its day and state, one outage from the cut's start to its end (HH:MM
    IST) and its reason."""
    assert f"{day}: {words['outage']}" in text, text
    (row,) = [line for line in text.splitlines() if words["reason"] in line]
    start, end = row.split()[:2]
    assert start in minutes_near(cut[0]) and end in minutes_near(cut[1]), (row, cut)
