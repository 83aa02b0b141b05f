"""``netmon discover`` against a real snmpsim agent serving a Cisco WLC recording (200 APs,
AP-RIMS-001..200): the 25 the inventory has are matched, the rest printed as entries that paste
into the inventory and validate, placed by the site rule; an inventory AP the controller does
not report is drift; nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from netmon.cli import main
from netmon.inventory import parse_inventory
from tests.snmp import agents

INVENTORY = """\
snmp:
  credentials:
    wlc: {{version: 2c, community: cisco-wlc, port: {port}}}
  defaults: {{interval: 60s, timeout: 1s, retries: 1, max_poll_time: 10s}}
sites:
  - id: mc-rims-ranchi
    name: RIMS Ranchi
    district: Ranchi
    type: medical_college
    devices:
      - {{name: wlc-1, role: controller, address: {host},
          snmp: {{credentials: wlc, profile: cisco-wlc}}}}
{aps}
      - {{name: ap-rims-999, role: ap, parent: wlc-1, probes: []}}
  - id: rims-1
    name: RIMS annexe (APs 100-199 by name)
    district: Ranchi
    type: other
"""


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[agents.Agent]:
    agent = agents.start_snmpsim(tmp_path_factory.mktemp("snmpsim"))
    yield agent
    agent.stop()


def test_discover_prints_pasteable_entries_and_drift(
    snmpsim: agents.Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aps = "\n".join(f"      - {{name: ap-rims-{n:03d}, role: ap, parent: wlc-1, probes: []}}"
                    for n in range(1, 26))  # fmt: skip
    path = tmp_path / "inv.yaml"
    text = INVENTORY.format(port=snmpsim.port, host=snmpsim.host, aps=aps)
    path.write_text(text)
    assert main(["discover", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert path.read_text() == text  # nothing written
    assert "# site mc-rims-ranchi: 75 APs the inventory lacks (under devices:)" in out
    assert "# site rims-1: 100 APs the inventory lacks (under devices:)" in out
    assert ("# drift: mc-rims-ranchi/ap-rims-999 is in the inventory; wlc-1 does not report it"
            in out)  # fmt: skip
    assert out[-1] == "# 175 new APs, 1 drifted, 0 controllers not read"
    entries = [line for line in out if line.startswith("      - ")]
    assert "      - {name: ap-rims-026, role: ap, parent: wlc-1, probes: [], mac: " in entries[0]
    pasted = yaml.safe_load("\n".join(line[6:] for line in entries))
    assert len(pasted) == 175 and len({d["name"] for d in pasted}) == 175
    first = pasted[:75]  # the controller's own site's: paste them and the inventory validates
    grown = text.replace("  - id: rims-1", "\n".join(f"      - {{name: {d['name']}, role: ap, "
                                                      f"parent: wlc-1, probes: [], mac: '{d['mac']}'}}"
                                                      for d in first) + "\n  - id: rims-1")  # fmt: skip
    assert len(parse_inventory(grown).site("mc-rims-ranchi").devices) == 1 + 26 + 75  # type: ignore[union-attr]


def test_an_unreachable_controller_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(INVENTORY.format(port=agents.free_udp_port(), host="127.0.0.1", aps=""))
    assert main(["discover", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# not read: mc-rims-ranchi/wlc-1: ")
    assert out[-1] == "# 0 new APs, 0 drifted, 1 controllers not read"
