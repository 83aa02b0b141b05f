"""One validation path: everything ``netmon run`` would reject, ``netmon check-config`` rejects.

:func:`validate` reads the inventory the settings name (every problem in one pass, each once,
as ``file:line: field: message``), resolves its secrets (``{env: ...}``, ``{file: ...}``) and
loads the SNMP profiles -- the bundled ones plus ``settings.snmp_profiles`` -- when a device is
polled by SNMP or a profiles directory is given (an inventory without SNMP never reads them).
``netmon run``, ``netmon check-config`` and a SIGHUP reload all call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from netmon.configfile import load_yaml
from netmon.errors import ConfigError, ConfigProblem
from netmon.inventory import Inventory
from netmon.inventory.loader import draft_inventory
from netmon.settings import Settings
from probes.snmp_profiles import DEFAULT_DIR, Profile, ProfileError, load_profiles, profile_names

EX_CONFIG = 78  # sysexits.h: configuration error (systemd: RestartPreventExitStatus=78)


@dataclass(frozen=True)
class ValidatedConfig:
    """What ``netmon run`` runs: settings, inventory and the SNMP profiles, all validated."""

    settings: Settings
    inventory: Inventory
    snmp_profiles: Mapping[str, Profile] = field(default_factory=dict)  # empty: none needed

    @property
    def summary(self) -> str:
        devices = sum(len(s.devices) for s in self.inventory.sites)
        return f"{len(self.inventory.sites)} sites, {devices} devices"


def validate(settings: Settings) -> ValidatedConfig:
    """Validate everything ``settings`` point at; a ConfigError lists every problem found."""
    draft = draft_inventory(load_yaml(settings.config))
    directories = _profile_directories(settings)
    profiles: dict[str, Profile] = {}
    problems: list[ConfigProblem] = []
    if draft.uses("snmp") or settings.snmp_profiles is not None:
        try:
            profiles = load_profiles(*directories)
        except ProfileError as exc:
            problems = exc.problems
    known = profile_names(*directories) if draft.uses("snmp") else set()
    problems = list(dict.fromkeys(draft.checked(known) + problems))
    if problems:
        raise ConfigError(problems)
    return ValidatedConfig(settings, draft.inventory, profiles)


def _profile_directories(settings: Settings) -> list[Path]:
    extra = [settings.snmp_profiles] if settings.snmp_profiles is not None else []
    return [Path(DEFAULT_DIR), *extra]
