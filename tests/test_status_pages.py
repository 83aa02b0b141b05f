"""The status board (netmon.status) over known data (tests/status_drive.py: chc-bundu cut from
01:05 to 01:15 IST on 2026-11-11, chc-torpa in maintenance on the 12th) in a real store: what
each page says in English and Hindi, its JSON twin, ETag/304, the language cookie, errors;
the state page's progress equals /api/v1/progress (SQLite and PostgreSQL); the catalogue has
every string in both languages; the templates and assets name nothing outside the server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporters.prometheus import make_registry
from netmon.api import create_app
from netmon.errors import StoreError
from netmon.inventory import FacilityType, Role
from netmon.inventory.recurring import Recurring
from netmon.monitor import Monitor
from netmon.rollup import roll
from netmon.status.catalogue import Words, catalogue, group_digits
from netmon.status.data import day_state, recurring_dict
from netmon.status.reads import Reads
from netmon.store import Store
from netmon.verdict import Criterion, DeviceState, Verdict
from tests.conftest import FakeClock
from tests.status_drive import CUT_DAY, CUT_SITE, DAYS, IST, at, drive, run_for, start

STATUS = Path(__file__).resolve().parents[1] / "netmon" / "status"
ZERO = dict.fromkeys(
    ("fully_functional", "degraded", "down", "not_installed", "maintenance", "no_data"), 0.0
)


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('status') / 'netmon.db'}")
    store.migrate()
    yield drive(store)
    store.close()


def client_for(monitor: Monitor) -> httpx.AsyncClient:
    app = create_app(monitor, make_registry(monitor, "test", "raw"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def client(monitor: Monitor) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(monitor) as c:
        yield c


def text_of(html: str) -> str:
    """What a person reads: tags dropped, entities of the catalogue's texts decoded."""
    plain = re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&amp;", "&")
    return re.sub(r"\s+", " ", plain)


def row(html: str, site_id: str) -> str:
    """A site's row of a district page."""
    rest = html.split(f'<tr id="site-{site_id}">')[1]
    return rest.split('<tr id="site-')[0].split("</tbody>\n</table>")[0]


def outage_day(html: str, day: str) -> str:
    """The <details> of ``day`` in a page's bar (its popup with the outages)."""
    found = re.findall(r'<details class="day s-outage".*?</details>', html, re.S)
    mine = [d for d in found if day in d]
    assert len(mine) == 1, found
    return mine[0]


# --- the catalogue and the templates ------------------------------------------------------
def test_every_string_is_in_both_languages() -> None:
    texts = catalogue()
    for key, both in texts.items():
        assert both["en"].strip() and both["hi"].strip(), key
        assert set(re.findall(r"{(\w+)}", both["en"])) == set(re.findall(r"{(\w+)}", both["hi"])), (
            key
        )
    wanted = [f"reason.{c.value}" for c in Criterion] + [f"verdict.{v.value}" for v in Verdict]
    wanted += [f"type.{t}" for t in FacilityType.__args__]  # type: ignore[attr-defined]
    wanted += [f"role.{r}" for r in Role.__args__]  # type: ignore[attr-defined]
    wanted += [f"device.{s}" for s in DeviceState.__args__]  # type: ignore[attr-defined]
    wanted += [f"day.{s}" for s in ("good", "degraded", "outage", "maintenance", "no_data")]
    wanted += [f"month.{m}" for m in range(1, 13)] + ["lang.en", "lang.hi"]
    used = set()
    for path in (STATUS / "templates").glob("*.html"):
        found = re.findall(r'w\.t\(["\']([\w.]+)["\']', path.read_text("utf-8"))
        used |= {k for k in found if not k.endswith(".")}  # "verdict." ~ code: in wanted
    missing = [k for k in (*wanted, *used) if k not in texts]
    assert not missing and len(used) > 40


def test_templates_and_assets_name_nothing_outside_the_server() -> None:
    files = [*(STATUS / "templates").glob("*.html"), *(STATUS / "static").glob("*.css"),
             *(STATUS / "static").glob("*.js")]  # fmt: skip
    assert len(files) >= 6
    for path in files:
        text = path.read_text("utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9]", text, re.I), path
        assert all(u.startswith("/status/static/") for u in re.findall(r'url\("?([^")]+)', text))
        assert not re.search(r'(src|href)="(?!/status|\{\{|\?)', text), path


def test_words_in_both_languages() -> None:
    en, hi = Words("en", IST), Words("hi", IST)
    assert [group_digits(n) for n in (7, 1234, 123456, 1234567)] == [
        "7",
        "1,234",
        "1,23,456",
        "12,34,567",
    ]
    assert (en.date("2026-11-11"), hi.date("2026-11-11")) == ("11 Nov 2026", "11 नवंबर 2026")
    assert en.when(1_794_339_300.0) == "11 Nov 2026, 01:05"  # 2026-11-10T19:35Z in IST
    assert (en.duration(3900), hi.duration(3900)) == ("1 h 5 min", "1 घंटे 5 मिनट")
    assert en.share(0.97514) == "97.5%" and hi.share(None) == "—"
    cut = {"criterion": "uplink_down", "device": "wan-1", "measured": 0.0}
    assert en.reason(cut) == "The internet link (wan-1) is not reachable"
    assert hi.reason(cut) == "इंटरनेट लिंक (wan-1) से संपर्क नहीं हो रहा"
    loss = {"criterion": "uplink_loss", "device": "wan-1", "measured": 0.034, "threshold": 0.01}
    assert en.reason(loss) == "The internet link (wan-1) loses 3.4% of packets (limit 1.0%)"
    assert en.reason({"criterion": "a_new_one", "message": "as said"}) == "as said"


@pytest.mark.parametrize(
    ("seconds", "state"),
    [
        (None, "no_data"),
        ({}, "no_data"),
        ({"no_data": 86400.0}, "no_data"),
        ({"maintenance": 3600.0, "no_data": 82800.0}, "maintenance"),
        ({"fully_functional": 3000.0, "down": 1.0}, "outage"),
        ({"fully_functional": 950.0, "degraded": 50.0}, "good"),
        ({"fully_functional": 850.0, "degraded": 150.0}, "degraded"),
        ({"not_installed": 600.0}, "not_installed"),
    ],
)
def test_day_states(seconds: dict[str, float] | None, state: str) -> None:
    assert day_state(None if seconds is None else {**ZERO, **seconds}, 0.9) == state


async def test_reads_wait_once_then_serve_the_last_read_while_reading_again() -> None:
    reads, calls = Reads(every=60.0), []
    gate = asyncio.Event()

    async def read() -> int:
        calls.append(len(calls))
        if len(calls) == 3:
            raise StoreError("the database is away")
        if len(calls) == 2:
            await gate.wait()
        return len(calls)

    assert await asyncio.gather(reads.get("k", 0.0, read), reads.get("k", 1.0, read)) == [1, 1]
    assert await reads.get("k", 59.0, read) == 1 and calls == [0]  # fresh: not read
    assert await reads.get("k", 61.0, read) == 1  # stale: the last read, one read started
    await asyncio.sleep(0)
    assert await reads.get("k", 62.0, read) == 1 and calls == [0, 1]  # not a second one
    gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await reads.get("k", 63.0, read) == 2 and calls == [0, 1]  # kept at 61: fresh
    assert await reads.get("k", 125.0, read) == 2  # the third read fails ...
    await asyncio.sleep(0)
    assert await reads.get("k", 126.0, read) == 2 and len(calls) == 3  # ... kept; tried again
    await asyncio.sleep(0)
    assert len(calls) == 4 and await reads.get("k", 127.0, read) == 4


# --- the pages ------------------------------------------------------------------------------
async def test_district_page_shows_the_red_day_with_its_outage(client: httpx.AsyncClient) -> None:
    resp = await client.get("/status/district/ranchi", params={"lang": "en"})
    assert resp.status_code == 200 and resp.headers["content-language"] == "en"
    html = resp.text
    bundu = row(html, CUT_SITE)
    day = outage_day(bundu, "11 Nov 2026")
    said = text_of(day)
    assert "11 Nov 2026: Outage, availability 50.0%, down 10 min" in said
    assert "01:05 01:15 The internet link (wan-1) is not reachable" in said
    assert bundu.count("s-outage") == 1 and bundu.count('class="day run s-good"') == 2
    assert bundu.count('class="day run s-no_data"') == 1  # one cell 87 days wide
    assert 'title="15 Aug 2026 – 9 Nov 2026: No data (87 days)"' in bundu
    angara = row(html, "chc-angara")
    assert "s-outage" not in angara and "100.00%" in angara  # 30-day availability
    assert "District Ranchi" in text_of(html) and "Fully functional" in text_of(bundu)


async def test_hindi_labels_names_and_reason(client: httpx.AsyncClient) -> None:
    resp = await client.get("/status/district/Ranchi", params={"lang": "hi"})
    assert resp.headers["content-language"] == "hi" and 'lang="hi"' in resp.text
    assert "netmon_lang=hi" in resp.headers["set-cookie"]
    said = text_of(resp.text)
    assert "जिला रांची" in said and "सामुदायिक स्वास्थ्य केंद्र, बुंडू" in said
    assert "Community Health Centre, Angara" in said  # no name_hi: its own name
    day = text_of(outage_day(resp.text, "11 नवंबर 2026"))
    assert "11 नवंबर 2026: बंद रहा, उपलब्धता 50.0%, 10 मिनट बंद" in day
    assert "01:05 01:15 इंटरनेट लिंक (wan-1) से संपर्क नहीं हो रहा" in day
    again = await client.get("/status/site/chc-torpa")  # the cookie keeps Hindi
    assert again.headers["content-language"] == "hi"
    said = text_of(again.text)
    assert "सामुदायिक स्वास्थ्य केंद्र, तोरपा" in said and "घोषित रखरखाव" in said
    english = await client.get("/status/site/chc-torpa", params={"lang": "en"})
    assert "Announced maintenance" in text_of(english.text)


async def test_state_page_and_its_json_twin(client: httpx.AsyncClient) -> None:
    body = (await client.get("/status", params={"format": "json"})).json()
    assert (body["sites"], body["fully_functional"]) == (3, 2)  # torpa: in maintenance now
    rows = {d["name"]: (d["sites"], d["fully_functional"], d["name_hi"]) for d in body["districts"]}
    assert rows == {"Khunti": (1, 0, "खूंटी"), "Ranchi": (2, 2, "रांची")}
    assert [(t["type"], t["sites"], t["fully_functional"]) for t in body["types"]] == [
        ("chc", 3, 2)
    ]
    r = body["rollout"]
    assert (r["start"], r["deadline"], r["days_left"]) == ("2026-11-10", "2026-11-30", 18)
    assert [(d["day"], d["sites"], d["fully_functional"]) for d in r["days"]] == [
        ("2026-11-10", 2, 2), ("2026-11-11", 3, 2), ("2026-11-12", 3, 2)]  # fmt: skip
    assert body["down_now"] == []
    html = (await client.get("/status", params={"lang": "en"})).text
    said = text_of(html)
    assert "Jharkhand: 2 of 3 sites fully functional now (66.7%)" in said
    assert "18 days left to the deadline (30 Nov 2026)" in said and "<svg" in html
    assert "No site is down now." in said
    assert "Community health centre (CHC) 3 2 66.7%" in said  # by facility type
    hi = text_of((await client.get("/status", params={"lang": "hi"})).text)
    assert "समय-सीमा (30 नवंबर 2026) में 18 दिन शेष" in hi and "रांची" in hi
    assert "झारखंड: 3 में से 2 सुविधाएँ अभी पूरी तरह कार्यशील (66.7%)" in hi


async def test_site_page(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"/status/site/{CUT_SITE}", params={"format": "json"})).json()
    assert body["hfr_id"] == "IN2099080001"
    assert [d["name"] for d in body["devices"]] == ["wan-1", "ap-1"]
    assert [c["verdict"] for c in body["history"]][-3:] == ["degraded", "down", "fully_functional"]
    day = next(d for d in body["days"] if d["day"] == CUT_DAY.isoformat())
    assert day["state"] == "outage" and day["down_seconds"] == 600.0
    [o] = day["outages"]
    assert (o["start"], o["end"]) == ("2026-11-10T19:35:00+00:00", "2026-11-10T19:45:00+00:00")
    assert [r["criterion"] for r in o["reasons"]] == ["uplink_down"]
    torpa = (await client.get("/status/site/chc-torpa", params={"format": "json"})).json()
    assert [d["state"] for d in torpa["days"][-2:]] == ["good", "maintenance"]
    assert torpa["days"][-3]["state"] == "good"  # probed before its commissioned day too
    assert (
        torpa["maintenance"][0]["reason"] == "BSNL fibre splicing"
        and torpa["maintenance"][0]["now"]
    )
    html = (await client.get(f"/status/site/{CUT_SITE}", params={"lang": "en"})).text
    said = text_of(html)
    assert "Health Facility Registry (HFR) ID IN2099080001" in said
    assert "Internet link (ONT)" in said and html.count('tabindex="0"') == 3  # + 1 <details>
    assert "11 Nov 2026, 01:05 ✕ Down The internet link (wan-1) is not reachable" in said


async def test_todays_outage_is_red_before_any_roll(tmp_path: Path) -> None:
    """An outage this morning makes today's day red at once: today is accounted live from the
    raw tables, not from a site_day row that is rolled each minute (and not at all in netmon's
    first minute). Here nothing is rolled, then today is."""
    store = Store(f"sqlite:///{tmp_path / 'netmon.db'}")
    store.migrate()
    day = DAYS[0]
    clock = FakeClock(at(day, 9, 0))
    monitor = start(store, clock)
    cut = (at(day, 9, 5), at(day, 9, 12))
    run_for(monitor, clock, 1200, lambda s, t: s == CUT_SITE and cut[0] <= t < cut[1])
    async with client_for(monitor) as c:
        body = (await c.get(f"/status/site/{CUT_SITE}", params={"format": "json"})).json()
        html = (await c.get("/status/district/Ranchi", params={"lang": "en"})).text
        state = (await c.get("/status", params={"format": "json"})).json()
        said = text_of((await c.get("/status", params={"lang": "en"})).text)
    roll(store, monitor.inventory, IST, day, day, clock.now)
    async with client_for(monitor) as c:  # a new app: nothing kept from the first reads
        rolled = (await c.get("/status", params={"format": "json"})).json()
    store.close()
    # the rollout's line leaves out today until it is rolled (not yet known, not 0 of 2)
    assert state["rollout"]["days"] == [] and "No day has been counted yet since 10 Nov" in said
    assert rolled["rollout"]["days"] == [{"day": "2026-11-10", "sites": 2, "fully_functional": 1}]
    today = body["days"][-1]
    assert (today["day"], today["state"], today["down_seconds"]) == (
        day.isoformat(),
        "outage",
        420.0,
    )
    [o] = today["outages"]
    assert (o["start"], o["end"]) == ("2026-11-10T03:35:00+00:00", "2026-11-10T03:42:00+00:00")
    assert [r["criterion"] for r in o["reasons"]] == ["uplink_down"]
    said = text_of(outage_day(row(html, CUT_SITE), "10 Nov 2026"))
    assert "10 Nov 2026: Outage" in said and "09:05 09:12 The internet link (wan-1)" in said
    assert "s-outage" not in row(html, "chc-angara") and 'class="day run s-good"' in row(
        html, "chc-angara"
    )


async def test_recurring_maintenance_is_listed_beside_the_one_off(
    client: httpx.AsyncClient,
) -> None:
    """chc-torpa's inventory has a one-off window and two recurring rules (weekly in IST,
    monthly in UTC): the site page lists both kinds, each rule in words with its next
    occurrence (the clock is at 12 Nov 2026 01:30 IST, a Thursday), in English and Hindi."""
    body = (await client.get("/status/site/chc-torpa", params={"format": "json"})).json()
    assert [m["reason"] for m in body["maintenance"]] == ["BSNL fibre splicing"]
    weekly, monthly = body["recurring"]
    assert (weekly["every"], weekly["days"], weekly["start"], weekly["duration"]) == (
        "weekly", ["tue", "fri"], "03:00", 3600.0)  # fmt: skip
    assert (weekly["next_start"], weekly["next_end"], weekly["now"]) == (
        "2026-11-12T21:30:00+00:00", "2026-11-12T22:30:00+00:00", False)  # fmt: skip
    assert (monthly["timezone"], monthly["next_start"]) == ("UTC", "2026-11-15T06:00:00+00:00")
    en = text_of((await client.get("/status/site/chc-torpa", params={"lang": "en"})).text)
    assert "Announced windows Start End Reason 12 Nov 2026, 01:00 12 Nov 2026, 02:00" in en
    assert ("Recurring windows When Next Reason Every Tuesday and Friday at 03:00 (IST), for 1 h"
            " 13 Nov 2026, 03:00 UPS battery check") in en  # fmt: skip
    assert ("On day 1 and 15 of every month at 06:00 (UTC), for 1 h 30 min 15 Nov 2026, 11:30"
            " router patching") in en  # fmt: skip
    hi = text_of((await client.get("/status/site/chc-torpa", params={"lang": "hi"})).text)
    assert "नियमित अवधियाँ कब अगली बार कारण" in hi and "घोषित अवधियाँ" in hi
    assert "हर मंगलवार और शुक्रवार 03:00 (IST) पर, 1 घंटे के लिए 13 नवंबर 2026, 03:00" in hi
    assert "हर महीने की 1 और 15 तारीख को 06:00 (UTC) पर, 1 घंटे 30 मिनट के लिए" in hi
    bundu = text_of((await client.get(f"/status/site/{CUT_SITE}", params={"lang": "en"})).text)
    assert "No maintenance announced." in bundu and "Recurring windows" not in bundu


def test_a_recurring_window_open_now_says_until_when() -> None:
    rule = Recurring.model_validate(
        {"every": "daily", "start": "23:30", "duration": "1h", "reason": "backup"}
    )
    inside = at(DAYS[0], 23, 45)
    d = recurring_dict(rule, inside)
    assert d["now"] and (d["next_start"], d["next_end"]) == (
        "2026-11-10T18:00:00+00:00", "2026-11-10T19:00:00+00:00")  # fmt: skip
    assert not recurring_dict(rule, at(DAYS[0], 22, 0))["now"]
    words = Words("en", IST)
    assert words.recurring(d) == "Every day at 23:30 (IST), for 1 h"
    assert words.t("recurring.now", end=words.when(at(DAYS[1], 0, 30))) == (
        "now, until 11 Nov 2026, 00:30"
    )


async def test_etag_cache_control_and_errors(client: httpx.AsyncClient) -> None:
    first = await client.get("/status/district/Khunti", params={"lang": "en"})
    tag = first.headers["etag"]
    assert (
        first.headers["cache-control"] == "public, max-age=30" and "Cookie" in first.headers["vary"]
    )
    again = await client.get("/status/district/Khunti", params={"lang": "en"},
                             headers={"If-None-Match": tag})  # fmt: skip
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    hindi = await client.get("/status/district/Khunti", params={"lang": "hi"},
                             headers={"If-None-Match": tag})  # fmt: skip
    assert hindi.status_code == 200 and hindi.headers["etag"] != tag
    gone = await client.get("/status/district/Atlantis", params={"lang": "en"})
    assert gone.status_code == 404 and "Not found: Atlantis" in gone.text
    assert (await client.get("/status/site/nope", params={"format": "json"})).json()[
        "error"
    ] == "not_found"
    assert (await client.get("/status", params={"format": "xml"})).status_code == 422
    assert (await client.get("/status/static/../app.py")).status_code == 404
    css = await client.get("/status/static/status.css")
    assert css.headers["content-type"].startswith("text/css") and "@font-face" in css.text
    font = await client.get("/status/static/NotoSansDevanagari-Regular.ttf")
    assert font.status_code == 200 and font.content[:4] == b"\x00\x01\x00\x00"  # TrueType


async def test_closed_reads_close_the_board_and_input_is_escaped(monitor: Monitor) -> None:
    app = create_app(monitor, make_registry(monitor, "test", "raw"), read_requires_token=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/status")).status_code == 401
    async with client_for(monitor) as c:
        resp = await c.get('/status/district/<img src=x onerror="alert(1)">', params={"lang": "en"})
    assert resp.status_code == 404 and "<img src=x" not in resp.text
    assert "Not found: &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in resp.text


async def test_loading_monitor_answers_503(monitor: Monitor) -> None:
    monitor.ready = False
    try:
        async with client_for(monitor) as c:
            resp = await c.get("/status", params={"lang": "en"})
    finally:
        monitor.ready = True
    assert resp.status_code == 503 and "netmon is starting" in resp.text


async def test_a_dead_database_leaves_the_verdicts_shown(monitor: Monitor, tmp_path: Path) -> None:
    """The store cannot be read (its folder is gone): the pages still show the verdicts in
    memory, say the history cannot be read, and show no invented day or count."""
    dead = Store(f"sqlite:///{tmp_path / 'never-made' / 'netmon.db'}")
    dead.migrated = True  # as if the folder went away after start-up
    alive, monitor.store = monitor.store, dead
    try:
        async with client_for(monitor) as c:
            state = await c.get("/status", params={"lang": "en"})
            district = await c.get("/status/district/Ranchi", params={"lang": "en"})
            site = await c.get(f"/status/site/{CUT_SITE}", params={"format": "json"})
            again = await c.get(f"/status/site/{CUT_SITE}", params={"lang": "hi"})
    finally:
        monitor.store = alive
        dead.close()
    notice = "The history cannot be read from the database just now"
    assert state.status_code == 200 and notice in state.text and "<svg" not in state.text
    assert "2 of 3 sites fully functional now" in text_of(state.text)
    assert district.status_code == 200 and district.text.count(notice) == 1
    assert "day run" not in district.text and 'details class="day' not in district.text
    body = site.json()
    assert (body["history_unavailable"], body["days"], body["history"]) == (True, [], [])
    assert body["verdict"] == "fully_functional"
    assert "अभी डेटाबेस से इतिहास नहीं पढ़ा जा सकता" in again.text


async def test_progress_equals_the_apis(database_url: str) -> None:
    """The board counts fully functional sites per day in SQL over site_day; /api/v1/progress
    from site_accounts (netmon.progress): the same numbers, on SQLite and PostgreSQL."""
    store = Store(database_url)
    store.migrate()
    m = drive(store)
    async with client_for(m) as c:
        board = (await c.get("/status", params={"format": "json"})).json()["rollout"]["days"]
        api: dict[str, Any] = (await c.get("/api/v1/progress", params={"by": "state"})).json()
    store.close()
    assert [(d["day"], d["sites"], d["fully_functional"]) for d in board] == [
        (r["day"], r["sites"], r["fully_functional"]) for r in api["data"]]  # fmt: skip
    assert [d["day"] for d in board] == [d.isoformat() for d in DAYS]


async def test_thirty_day_availability_is_the_apis(client: httpx.AsyncClient) -> None:
    """The board's 30-day availability comes from the days its bars read (no second read of
    the figures); with today rolled it is /api/v1/sites's figure for every site."""
    api = (await client.get("/api/v1/sites")).json()["data"]
    want = {s["id"]: s["availability_30d"] for s in api}
    got = {}
    for district in ("Ranchi", "Khunti"):
        page = (await client.get(f"/status/district/{district}", params={"format": "json"})).json()
        got |= {s["id"]: s["availability_30d"] for s in page["data"]}
    assert got == pytest.approx(want) and got[CUT_SITE] == pytest.approx(1 - 600 / 3600)
