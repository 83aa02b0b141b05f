"""``netmon import`` and ``netmon export``: a site register into the inventory file and back.

    netmon import csv SITES.csv [DEVICES.csv] --into inventory.yaml [--dry-run] [--prune]
    netmon import netbox --url URL --token-file FILE [--tag netmon] [--mapping MAP.yaml] --into ...
    netmon export csv [--from inventory.yaml] SITES.csv [DEVICES.csv]
    netmon discover [--config inventory.yaml]   (netmon.onboard.discover)

The import prints the diff (one line per site or device added, changed field by field, or
removed) and then writes the file, unless ``--dry-run``; any bad row is a
``file:row: column: message`` line, nothing is written and the exit status is 78. Registered in
:mod:`netmon.cli` by one call to :func:`add_parser`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from netmon.errors import ConfigError
from netmon.onboard.csv_io import read_csv, write_csv
from netmon.onboard.merge import merge, read_document, validate, write_atomically
from netmon.onboard.register import Register, summary
from probes.snmp_profiles import DEFAULT_DIR, profile_names


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = sub.add_parser("import", help="merge a site register (CSV) into an inventory file")
    sources = imp.add_subparsers(dest="source", required=True)
    csv = sources.add_parser(
        "csv", help="SITES.csv [DEVICES.csv] (columns: netmon.onboard.columns)"
    )
    csv.add_argument("sites", type=Path, metavar="SITES.csv")
    csv.add_argument("devices", type=Path, nargs="?", metavar="DEVICES.csv")
    _import_options(csv)
    csv.set_defaults(func=_importer(lambda a: read_csv(a.sites, a.devices)))
    netbox = sources.add_parser("netbox", help="NetBox's sites and devices with a tag (REST API)")
    netbox.add_argument(
        "--url", required=True, help="NetBox's base URL (https://netbox.example.org)"
    )
    netbox.add_argument(
        "--token-file", type=Path, required=True, help="a file holding the API token"
    )
    netbox.add_argument(
        "--tag", default="netmon", help="import objects with this tag (default netmon)"
    )
    netbox.add_argument("--mapping", type=Path, help="field mapping YAML (netmon.onboard.netbox)")
    _import_options(netbox)
    netbox.set_defaults(func=_importer(_read_netbox))
    exp = sub.add_parser("export", help="write an inventory's sites and devices as CSV")
    targets = exp.add_subparsers(dest="target", required=True)
    out = targets.add_parser("csv", help="SITES.csv [DEVICES.csv], the columns import reads")
    out.add_argument("--from", dest="inventory", type=Path,
                     help="inventory YAML (default: the one `run` would use)")  # fmt: skip
    out.add_argument("sites", type=Path, metavar="SITES.csv")
    out.add_argument("devices", type=Path, nargs="?", metavar="DEVICES.csv")
    out.add_argument("--snmp-profiles", type=Path, metavar="DIR", help="extra SNMP profiles")
    out.set_defaults(func=cmd_export_csv)
    disc = sub.add_parser("discover", help="APs the controllers report that the inventory lacks")
    disc.add_argument("--config", type=Path, help="inventory YAML (default: as `run`)")
    disc.add_argument("--snmp-profiles", type=Path, metavar="DIR", help="extra SNMP profiles")
    disc.set_defaults(func=cmd_discover)


def _import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--into", type=Path, required=True, metavar="INVENTORY.yaml",
                        help="the inventory to update (created if it does not exist)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    parser.add_argument("--prune", action="store_true",
                        help="remove sites (and devices of listed sites) the register lacks")  # fmt: skip
    parser.add_argument("--snmp-profiles", type=Path, metavar="DIR", help="extra SNMP profiles")


def _importer(
    read: Callable[[argparse.Namespace], Register],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return import_register(read(args), args.into, args.dry_run, args.prune, args.snmp_profiles)

    return run


def _read_netbox(args: argparse.Namespace) -> Register:
    from netmon.onboard.netbox import fetch, load_mapping, read_netbox, read_token

    mapping, token = load_mapping(args.mapping), read_token(args.token_file)
    sites = fetch(args.url, token, "dcim/sites", args.tag)
    devices = fetch(args.url, token, "dcim/devices", args.tag)
    return read_netbox(sites, devices, mapping)


def known_profiles(extra: Path | None) -> set[str]:
    return profile_names(DEFAULT_DIR, *([extra] if extra is not None else []))


def import_register(
    register: Register, into: Path, dry_run: bool, prune: bool, snmp_profiles: Path | None = None
) -> int:
    """Merge, validate, print the diff and (unless ``dry_run``) write; a ConfigError naming every
    bad row if anything is wrong, with nothing written."""
    profiles = known_profiles(snmp_profiles)
    result = merge(read_document(into), register, prune)
    text = ""
    if result.changes:  # unchanged: the file was valid (read_document), so is the result
        text = result.text()
        validate(result, text, str(into), profiles)
    if result.problems:
        raise ConfigError(result.problems)
    for note in register.notes:
        print(f"note: {note}")
    for change in result.changes:
        print(change)
    print(f"{into}: {summary(result.changes)}")
    if dry_run:
        print("dry run: nothing written")
    elif result.changes:
        write_atomically(into, text)
        print(f"wrote {into}")
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    """Poll every controller once; print new APs as entries to paste, and the drift."""
    import asyncio

    from netmon.cli import settings_from
    from netmon.config import validate
    from netmon.onboard.discover import discover

    config = validate(settings_from(args, config=args.config))
    print("\n".join(asyncio.run(discover(config)).lines()))
    return 0


def cmd_export_csv(args: argparse.Namespace) -> int:
    from netmon.cli import settings_from
    from netmon.inventory import load_inventory

    path = args.inventory or settings_from(args).config
    inventory = load_inventory(path, known_profiles(args.snmp_profiles))
    sites, devices = write_csv(inventory, args.sites, args.devices)
    print(f"wrote {sites} sites to {args.sites}" + (
        f" and {devices} devices to {args.devices}" if args.devices else ""))  # fmt: skip
    return 0
