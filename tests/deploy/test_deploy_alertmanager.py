"""deploy/alertmanager/: amtool accepts the config, routes go where the NOC expects, and a real
Alertmanager inhibits a down site's other alerts (APs, uplink loss, uplink ports), and only that
site's.

The inhibition test runs the shipped alertmanager.yml with one change: the test-webhook
receiver's URL points at a listener the test starts. Alerts carry netmon_test="true", which the
shipped routing sends to that receiver only.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:  # pytest imports tests/deploy/conftest.py as "conftest"
    from conftest import Bench

CONFIG = Path("deploy/alertmanager/alertmanager.yml")


def amtool(which: Callable[..., str], repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [which("amtool"), *args], cwd=repo, capture_output=True, text=True, timeout=60
    )


def test_amtool_check_config(which: Callable[..., str], repo: Path) -> None:
    out = amtool(which, repo, "check-config", str(CONFIG))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "NetmonSiteDown", "site": "dh-ranchi", "severity": "critical"}, "noc"),
        (
            {"alertname": "NetmonAccessPointsDown", "site": "dh-ranchi", "severity": "warning"},
            "noc",
        ),
        (
            {"alertname": "NetmonDeviceRebooted", "site": "dh-ranchi", "severity": "info"},
            "noc-review",
        ),
        (
            {"alertname": "NetmonUnknownAccessPoints", "site": "dh-ranchi", "severity": "info"},
            "noc-review",
        ),
        (
            {"alertname": "NetmonUplinkInterfaceDown", "site": "dh-ranchi", "severity": "warning"},
            "noc",
        ),
        (
            {"alertname": "NetmonSnmpNotAnswering", "site": "dh-ranchi", "severity": "warning"},
            "noc",
        ),
        ({"alertname": "NetmonNotScraped", "component": "netmon", "severity": "critical"}, "noc"),
        (
            {
                "alertname": "NetmonSiteDown",
                "site": "x",
                "severity": "critical",
                "netmon_test": "true",
            },
            "test-webhook",
        ),
    ],
)
def test_routes(
    which: Callable[..., str], repo: Path, labels: dict[str, str], receiver: str
) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    out = amtool(which, repo, "config", "routes", "test", f"--config.file={CONFIG}", *pairs)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == [receiver]


def test_site_down_inhibits_every_other_alert_of_the_same_site(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    conf = yaml.safe_load((repo / CONFIG).read_text())
    assert conf["route"]["group_by"] == ["site"]
    rule = next(
        r for r in conf["inhibit_rules"] if r["source_matchers"] == ['alertname="NetmonSiteDown"']
    )
    assert rule["equal"] == ["site"]
    (target,) = rule["target_matchers"]
    m = re.fullmatch(r'alertname=~"(.+)"', target)
    assert m, target
    inhibited = set(m.group(1).split("|"))
    # Every alert about a site (not netmon itself), except the source, is muted while it is down.
    site_alerts = {r["alert"] for r in alert_rules if r["labels"].get("component") != "netmon"} - {
        "NetmonSiteDown"
    }
    assert inhibited == site_alerts


# --- a real Alertmanager -------------------------------------------------------------------
class Webhook:
    """An HTTP listener on loopback collecting Alertmanager webhook notifications."""

    def __init__(self) -> None:
        self.notes: queue.Queue[dict[str, Any]] = queue.Queue()
        notes = self.notes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                notes.put(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/netmon-test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_for_site(self, site: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next notification for the group of ``site`` (others are set aside and kept)."""
        kept = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                note = self.notes.get(timeout=max(0.0, deadline - time.monotonic()))
                if note["groupLabels"].get("site") == site:
                    return note
                kept.append(note)
        except queue.Empty:
            pytest.fail(f"no webhook notification for site {site} within {timeout:g}s")
        finally:
            for note in kept:
                self.notes.put(note)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def site_alert(name: str, site: str, district: str, severity: str, **extra: str) -> dict[str, Any]:
    labels = {
        "alertname": name,
        "site": site,
        "district": district,
        "type": "district_hospital",
        "severity": severity,
        "netmon_test": "true",
        **extra,
    }
    return {
        "labels": labels,
        "annotations": {"summary": f"test {name} at {site}"},
        "startsAt": _now(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def firing(note: dict[str, Any]) -> set[str]:
    return {a["labels"]["alertname"] for a in note["alerts"] if a["status"] == "firing"}


@pytest.mark.slow
def test_real_alertmanager_inhibits_only_the_down_sites_alerts_until_it_resolves(
    bench: Bench, webhook: Webhook
) -> None:
    binary = bench.which("prometheus-alertmanager", "alertmanager")
    conf = yaml.safe_load((bench.repo / CONFIG).read_text())
    (receiver,) = [r for r in conf["receivers"] if r["name"] == "test-webhook"]
    receiver["webhook_configs"][0]["url"] = webhook.url
    config = bench.tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(conf, sort_keys=False))
    port = bench.free_port()
    proc = bench.processes.start(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={bench.tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
    )
    api = f"http://127.0.0.1:{port}/api/v2"

    def ready() -> bool:
        assert proc.poll() is None, f"alertmanager exited:\n{bench.processes.log(proc)}"
        return bench.http("GET", f"{api}/status")["cluster"]["status"] in ("disabled", "ready")

    bench.wait_for(ready, "Alertmanager to answer", timeout=30)

    down = site_alert("NetmonSiteDown", "dh-ranchi", "Ranchi", "critical")
    aps = site_alert("NetmonAccessPointsDown", "dh-ranchi", "Ranchi", "warning")
    loss = site_alert(
        "NetmonUplinkLoss", "dh-ranchi", "Ranchi", "warning", device="wan-1", role="wan"
    )
    iface = site_alert(
        "NetmonUplinkInterfaceDown",
        "dh-ranchi",
        "Ranchi",
        "warning",
        criterion="uplink_interface_down",
    )
    other = site_alert("NetmonAccessPointsDown", "dh-dumka", "Dumka", "warning")
    bench.http("POST", f"{api}/alerts", [down, aps, loss, iface, other])

    def states() -> dict[tuple[str, str], dict[str, Any]]:
        alerts = bench.http("GET", f"{api}/alerts")
        return {(a["labels"]["alertname"], a["labels"]["site"]): a for a in alerts}

    def inhibited_as_expected() -> dict[tuple[str, str], dict[str, Any]] | None:
        s = states()
        if len(s) == 5 and all(
            s[(name, "dh-ranchi")]["status"]["inhibitedBy"]
            for name in ("NetmonAccessPointsDown", "NetmonUplinkLoss", "NetmonUplinkInterfaceDown")
        ):
            return s
        return None

    s = bench.wait_for(inhibited_as_expected, "the same-site AP alert to be inhibited", timeout=30)
    source = s[("NetmonSiteDown", "dh-ranchi")]
    assert s[("NetmonAccessPointsDown", "dh-ranchi")]["status"]["inhibitedBy"] == [
        source["fingerprint"]
    ]
    assert s[("NetmonUplinkLoss", "dh-ranchi")]["status"]["inhibitedBy"] == [source["fingerprint"]]
    assert s[("NetmonUplinkInterfaceDown", "dh-ranchi")]["status"]["inhibitedBy"] == [
        source["fingerprint"]
    ]
    assert s[("NetmonAccessPointsDown", "dh-ranchi")]["status"]["state"] == "suppressed"
    assert s[("NetmonAccessPointsDown", "dh-dumka")]["status"]["inhibitedBy"] == []
    assert s[("NetmonAccessPointsDown", "dh-dumka")]["status"]["state"] == "active"
    assert source["status"]["inhibitedBy"] == []

    # The NOC is paged once for the down site (muted alerts left out), and for the other site.
    assert firing(webhook.next_for_site("dh-ranchi")) == {"NetmonSiteDown"}
    assert firing(webhook.next_for_site("dh-dumka")) == {"NetmonAccessPointsDown"}

    # The uplink comes back: the source resolves, and what is still true is no longer muted.
    bench.http("POST", f"{api}/alerts", [dict(down, endsAt=_now())])

    def released() -> dict[tuple[str, str], dict[str, Any]] | None:
        s = states()
        still = [k for k, a in s.items() if a["status"]["inhibitedBy"]]
        return s if not still else None

    s = bench.wait_for(released, "the AP and uplink alerts to be released", timeout=30)
    assert s[("NetmonAccessPointsDown", "dh-ranchi")]["status"]["state"] == "active"
    assert s[("NetmonUplinkLoss", "dh-ranchi")]["status"]["state"] == "active"
    assert s[("NetmonUplinkInterfaceDown", "dh-ranchi")]["status"]["state"] == "active"
    assert ("NetmonSiteDown", "dh-ranchi") not in s or s[("NetmonSiteDown", "dh-ranchi")]["status"][
        "state"
    ] != "active"
    # If a flush sees the resolution before the inhibitor does, the released alerts follow one
    # group interval later: read the site's notifications until they arrive (a few at most).
    released_names = {"NetmonAccessPointsDown", "NetmonUplinkLoss", "NetmonUplinkInterfaceDown"}
    notes = [webhook.next_for_site("dh-ranchi")]
    while firing(notes[-1]) != released_names and len(notes) < 5:
        notes.append(webhook.next_for_site("dh-ranchi"))
    assert firing(notes[-1]) == released_names
    resolved = {
        a["labels"]["alertname"] for n in notes for a in n["alerts"] if a["status"] == "resolved"
    }
    assert resolved == {"NetmonSiteDown"}
