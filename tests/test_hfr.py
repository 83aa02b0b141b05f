"""ABDM Health Facility Registry ids: the format (``IN`` + 10 digits), unique across the
inventory (tests/data/inventory/invalid-*hfr-id.yaml), and ``check-config --report`` listing the
sites that have none."""

from __future__ import annotations

from pathlib import Path

import pytest

from netmon.cli import main
from netmon.errors import ConfigError
from netmon.inventory import parse_inventory

SITES = """
sites:
  - {id: chc-a, name: CHC A, district: Ranchi, type: chc, hfr_id: IN2010000001}
  - {id: chc-b, name: CHC B, district: Khunti, type: chc}
  - {id: chc-c, name: CHC C, district: Khunti, type: chc, hfr_id: %s}
"""


@pytest.mark.parametrize("bad", ["in2010000003", "IN201000000", "IN20100000034", "IN20100000x3",
                                 "'IN 2010000003'", "2010000003"])  # fmt: skip
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_inventory(SITES % bad, "x.yaml")
    assert [p.field for p in info.value.problems] == ["sites[2].hfr_id"]


def test_a_well_formed_unique_id_is_accepted_and_a_reused_one_is_not() -> None:
    assert parse_inventory(SITES % "IN2010000003").sites[2].hfr_id == "IN2010000003"
    with pytest.raises(ConfigError) as info:
        parse_inventory(SITES % "IN2010000001", "x.yaml")
    assert [str(p) for p in info.value.problems] == [
        "x.yaml:5: sites[2].hfr_id: HFR id IN2010000001 is already the id of site 'chc-a'"
    ]


def test_check_config_report_lists_the_sites_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text(SITES % "IN2010000003", encoding="utf-8")
    assert main(["check-config", "--report", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: OK (3 sites, 0 devices)",
        f"{path}: sites without an hfr_id: 1 of 3",
        "  chc-b  (Khunti)  CHC B",
    ]
    assert main(["check-config", str(path)]) == 0
    assert "hfr_id" not in capsys.readouterr().out
