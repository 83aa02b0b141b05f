"""Onboarding: a site register from a spreadsheet (or another source) into the inventory file.

A source is read into a :class:`~netmon.onboard.register.Register` -- plain records of site and
device fields, each remembering where it came from (``sites.csv`` row 7). :mod:`merge` applies a
register to the inventory YAML in place (ruamel.yaml round-trip: the comments, quoting and order
of every entry it does not change are kept byte for byte), keyed by site id and device name, so
importing the same register twice changes nothing. The merged text is then validated by the
inventory's own models and cross checks -- the same rules as ``netmon check-config`` -- and
every problem is located back at the source's row and column. Nothing is written when any
problem is found, and ``--dry-run`` prints the field-by-field diff without writing.

    register    the records (Register, SiteRecord, DeviceRecord, Origin) and Change (the diff)
    columns     the CSV columns: which inventory field each one sets
    csv_io      reading CSV files into a register (structural problems by row); export to CSV
    netbox      NetBox's REST API (sites, devices by tag and status) into a register, by a mapping
    discover    ``netmon discover``: the controllers' APs the inventory lacks, and the drift
    merge       applying a register to the YAML document; the diff; locating problems
    cli         ``netmon import csv|netbox`` and ``netmon export csv`` (registered once in netmon.cli)
"""
