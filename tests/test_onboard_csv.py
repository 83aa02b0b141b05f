"""``netmon import csv`` / ``netmon export csv``: keyed, idempotent, diffed, all or nothing.

The bundled example (81 sites, 2,152 devices) is exported and imported back (into itself: no
change, byte for byte; into an inventory without sites: the same sites); planted bad rows are
each reported at their row and column and nothing is written; the written file passes
``check-config``; comments and the form of untouched entries survive a change elsewhere.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from netmon.cli import main
from netmon.config import EX_CONFIG
from netmon.inventory import load_inventory
from netmon.onboard.csv_io import read_csv

EXAMPLE = Path(__file__).resolve().parents[1] / "netmon/data/inventory/jharkhand-example.yaml"
SMALL = """\
# The district's sites; maintained by the NOC.
snmp:
  credentials:
    ro: {version: 2c, community: not-a-secret}
sites:
  - id: chc-a
    name: 'Community Health Centre, A'
    district: Ranchi
    type: chc
    hfr_id: IN2099000001
    probe: {interval: 30s}  # not a CSV column: kept as it is
    devices:
      - {name: wan-1, role: wan, address: 127.1.1.1}
      - {name: sw-01, role: switch, address: 127.1.5.1, parent: wan-1}

  - id: chc-b
    name: 'Community Health Centre, B'
    name_hi: 'सामुदायिक स्वास्थ्य केंद्र, बी'
    district: Khunti
    type: chc
    devices:
      - {name: wan-1, role: wan, address: 127.1.2.1}
"""


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_example_round_trips_into_itself_unchanged_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites, devices, into = tmp_path / "sites.csv", tmp_path / "devices.csv", tmp_path / "inv.yaml"
    code, out, _ = run(capsys, "export", "csv", "--from", EXAMPLE, sites, devices)
    assert code == 0 and "81 sites" in out and "2152 devices" in out
    shutil.copy(EXAMPLE, into)
    code, out, _ = run(capsys, "import", "csv", sites, devices, "--into", into)
    assert code == 0, out
    assert "no changes" in out and "wrote" not in out
    assert into.read_bytes() == EXAMPLE.read_bytes()


def test_the_example_imported_into_an_empty_register_gives_the_same_sites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites, devices, into = tmp_path / "sites.csv", tmp_path / "devices.csv", tmp_path / "inv.yaml"
    run(capsys, "export", "csv", "--from", EXAMPLE, sites, devices)
    head = EXAMPLE.read_text(encoding="utf-8").split("\nsites:\n", 1)[0]
    into.write_text(head + "\nsites: []\n", encoding="utf-8")
    code, out, err = run(capsys, "import", "csv", sites, devices, "--into", into)
    assert code == 0, err
    assert "81 sites added, 2152 devices added" in out
    assert load_inventory(into).model_dump() == load_inventory(EXAMPLE).model_dump()
    assert run(capsys, "check-config", into)[0] == 0
    code, out, _ = run(capsys, "import", "csv", sites, devices, "--into", into)
    assert (code, out.splitlines()[0]) == (0, f"{into}: no changes")  # keyed: idempotent


def test_five_planted_errors_are_each_reported_with_row_and_column_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites, devices, into = tmp_path / "sites.csv", tmp_path / "devices.csv", tmp_path / "inv.yaml"
    run(capsys, "export", "csv", "--from", EXAMPLE, sites, devices)
    site_rows = read(sites)
    device_rows = read(devices)
    site_rows[2][4] = "hospital"  # row 3, type
    site_rows[4][3] = "Atlantis"  # row 5, district
    site_rows[6][5] = "IN12345"  # row 7, hfr_id
    site_rows[8][6] = "2026-13-01"  # row 9, commissioned
    device_rows[9][4] = "no-such-switch"  # row 10, parent
    write(sites, site_rows), write(devices, device_rows)
    shutil.copy(EXAMPLE, into)
    code, out, err = run(capsys, "import", "csv", sites, devices, "--into", into)
    assert code == EX_CONFIG and out == ""
    lines = err.splitlines()
    assert len(lines) == 5, err
    for row, column in ((3, "type"), (5, "district"), (7, "hfr_id"), (9, "commissioned")):
        assert any(line.startswith(f"{sites}:{row}: {column}: ") for line in lines), (row, err)
    assert any(line.startswith(f"{devices}:10: parent: no device named") for line in lines)
    assert "Traceback" not in err
    assert into.read_bytes() == EXAMPLE.read_bytes()


def test_dry_run_prints_the_diff_field_by_field_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "inv.yaml"
    into.write_text(SMALL, encoding="utf-8")
    sites = write(tmp_path / "s.csv", [
        ["id", "name", "name_hi", "district", "type", "hfr_id", "commissioned"],
        ["chc-a", "Community Health Centre, A", "", "Khunti", "chc", "IN2099000001", "2026-01-10"],
        ["chc-c", "Community Health Centre, C", "", "Ranchi", "chc", "", ""],
    ])  # fmt: skip
    devices = write(tmp_path / "d.csv", [
        ["site", "name", "role", "address", "parent", "snmp_credentials"],
        ["chc-a", "wan-1", "wan", "127.1.1.9", "", ""],
        ["chc-a", "sw-01", "switch", "127.1.5.1", "wan-1", "ro"],
        ["chc-c", "wan-1", "wan", "127.1.3.1", "", ""],
    ])  # fmt: skip
    code, out, err = run(capsys, "import", "csv", sites, devices, "--into", into, "--dry-run",
                         "--prune")  # fmt: skip
    assert code == 0, err
    assert out.splitlines() == [
        "removed site chc-b",
        "changed site chc-a: district: 'Ranchi' -> 'Khunti'; commissioned: (none) -> '2026-01-10'",
        "added   site chc-c: name='Community Health Centre, C', district='Ranchi', type='chc'",
        "changed device chc-a/wan-1: address: '127.1.1.1' -> '127.1.1.9'",
        "changed device chc-a/sw-01: snmp.credentials: (none) -> 'ro'",
        "added   device chc-c/wan-1: role='wan', address='127.1.3.1'",
        f"{into}: 1 site added, 1 site changed, 1 site removed, 1 device added, "
        "2 devices changed, 4 fields changed",
        "dry run: nothing written",
    ]
    assert into.read_text(encoding="utf-8") == SMALL


def test_a_write_keeps_comments_and_untouched_entries_and_passes_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "inv.yaml"
    into.write_text(SMALL, encoding="utf-8")
    sites = write(tmp_path / "s.csv", [["id", "commissioned"], ["chc-a", "2026-01-10"]])
    code, out, err = run(capsys, "import", "csv", sites, "--into", into)
    assert code == 0, err
    assert f"wrote {into}" in out
    expected = SMALL.replace("    probe:", "    commissioned: 2026-01-10\n    probe:")
    assert into.read_text(encoding="utf-8") == expected  # only the managed column changed
    assert run(capsys, "check-config", into)[0] == 0
    code, out, _ = run(capsys, "import", "csv", sites, "--into", into)
    assert out.startswith(f"{into}: no changes")


def test_a_site_new_file_gets_flow_style_devices_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "new.yaml"
    sites = write(tmp_path / "s.csv", [["id", "name", "district", "type"],
                                        ["chc-x", "CHC X: Ranchi", "Ranchi", "chc"]])  # fmt: skip
    devices = write(tmp_path / "d.csv", [["site", "name", "role", "address", "mac"],
                                          ["chc-x", "ap-1", "ap", "127.9.0.1", "10:20:30:40:50:59"]])  # fmt: skip
    assert run(capsys, "import", "csv", sites, devices, "--into", into)[0] == 0
    text = into.read_text(encoding="utf-8")
    assert "- {name: ap-1, role: ap, address: 127.9.0.1, mac: '10:20:30:40:50:59'}" in text
    assert load_inventory(into).sites[0].devices[0].mac == "10:20:30:40:50:59"


def test_structural_problems_are_reported_by_row(tmp_path: Path) -> None:
    sites = write(tmp_path / "s.csv", [["id", "name", "colour"], ["a", "A", "red"]])
    assert [str(p) for p in read_csv(sites).problems] == [
        f"{sites}:1: unknown column 'colour' (known: id, name, name_hi, district, type, hfr_id, "
        "commissioned)"
    ]
    sites = write(tmp_path / "s.csv", [["id", "name"], ["a", "A"], ["", "B"], ["a", "C"], ["b"]])
    assert [str(p) for p in read_csv(sites).problems] == [
        f"{sites}:3: id: empty: every row needs one",
        f"{sites}:4: id: duplicate site id 'a' (first at row 2)",
        f"{sites}:5: 1 cells, but the header has 2 columns",
    ]
    (tmp_path / "bad.csv").write_bytes(b"id,name\nchc-\xff,x\n")
    assert "not UTF-8: byte 0xff" in str(read_csv(tmp_path / "bad.csv").problems[0])


def test_a_device_of_an_unknown_site_is_reported_at_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "inv.yaml"
    into.write_text(SMALL, encoding="utf-8")
    sites = write(tmp_path / "s.csv", [["id"], ["chc-a"]])
    devices = write(tmp_path / "d.csv", [["site", "name", "role"], ["chc-z", "wan-1", "wan"],
                                          ["chc-a", "ap-9", "ap"]])  # fmt: skip
    code, _, err = run(capsys, "import", "csv", sites, devices, "--into", into)
    assert code == EX_CONFIG
    assert err.splitlines() == [
        f"{devices}:2: site: no site 'chc-z' in the sites file or the inventory",
        f"{devices}:3: address: needed to probe it (icmp); or set probes: []",
    ]
    assert into.read_text(encoding="utf-8") == SMALL
