"""netmon's exception tree. Lower libraries' errors are translated here with ``raise ... from``.

    NetmonError              the CLI prints ``netmon: <message>`` and exits 1
    ├── ConfigError          settings, inventory or SNMP profiles are invalid (carries every
    │   │                    problem found); the CLI prints one ``file:line: field: message``
    │   │                    per problem and exits 78 (EX_CONFIG)
    │   └── ProfileError     an SNMP profile file is invalid (``probes.snmp_profiles``)
    ├── StoreError           the database cannot be reached, read or written (the store
    │                        translates SQLAlchemy's errors; the API answers 503)
    ├── ProbeUnavailable     a probe engine cannot start
    │   └── IcmpUnavailable  no ICMP socket here; the message names both fixes (probes.icmp_socket)
    ├── LabError             the facility lab cannot do what was asked (netmon.lab.model)
    └── ApiProblem           API errors (NotFound, Loading, …) answered as RFC 9457 problems

Errors that never leave their module (an SNMP request that timed out, a name that did not
resolve) are turned into probe results there, as data.

A down device is not an exception: probes return it as data (see ``probes.base``).
"""

from __future__ import annotations

from dataclasses import dataclass


class NetmonError(Exception):
    """Base of every error netmon raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, located as precisely as the file allows."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(NetmonError):
    """The configuration is invalid; ``problems`` lists every problem found, each once."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StoreError(NetmonError):
    """The database failed; results that were taken are kept in memory and retried."""


class StoreUnavailable(StoreError):
    """The database cannot be reached at all (down, refusing, no route): netmon runs anyway,
    journaling results until it returns."""


class ProbeUnavailable(NetmonError):
    """A probe engine cannot run on this machine (the message says how to fix it)."""
