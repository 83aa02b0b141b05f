"""Loading an inventory file: every problem in one pass, each once, with its file and line.

Each top-level section and each site is validated on its own; the parts that validate make a
draft inventory, which the cross checks then examine. So a type error in one site does not hide
a duplicate id, an unknown district or a missing parent elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from netmon.configfile import Document, load_yaml, parse_yaml, validation_problems
from netmon.errors import ConfigError, ConfigProblem
from netmon.inventory.checks import cross_checks
from netmon.inventory.models import Inventory, Site
from probes import KINDS
from probes.snmp_profiles import DEFAULT_DIR, profile_names


@dataclass
class Draft:
    """The inventory built from the parts of a file that validated, and the problems of the rest."""

    doc: Document
    inventory: Inventory
    positions: list[int]  # inventory.sites[k] is sites[positions[k]] in the file
    problems: list[ConfigProblem]

    def uses(self, kind: str) -> bool:
        """Whether any device (of the sites that validated) is probed by ``kind``."""
        return any(kind in dev.kinds for site in self.inventory.sites for dev in site.devices)

    def checked(self, snmp_profiles: Collection[str]) -> list[ConfigProblem]:
        """Every problem: validation, then the cross checks; each once, in file order of finding."""
        found = cross_checks(self.inventory, snmp_profiles, self.positions)
        problems = self.problems + [self.doc.problem(loc, message) for loc, message in found]
        return list(dict.fromkeys(problems))


def draft_inventory(doc: Document) -> Draft:
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(doc.filename, 1, "", "the top level must be a mapping")])
    problems = list(doc.problems)
    parts = _top_level(data, doc, problems)
    sites, positions = _sites(data.get("sites", []), doc, problems)
    inventory = Inventory.model_validate({**parts, "sites": sites})
    return Draft(doc, inventory, positions, problems)


def _top_level(
    data: dict[Any, Any], doc: Document, problems: list[ConfigProblem]
) -> dict[str, Any]:
    """Each top-level section validated on its own; a broken one is left at its default."""
    parts: dict[str, Any] = {}
    for key, value in data.items():
        if key == "sites":
            continue
        try:
            part = Inventory.model_validate({key: value})
        except ValidationError as exc:
            problems += validation_problems(exc, doc)
            if key in KINDS and key in Inventory.model_fields and isinstance(value, dict):
                parts[key] = _names_only(key, value)
            continue
        parts[key] = getattr(part, key)
    return parts


def _names_only(key: str, value: dict[Any, Any]) -> object:
    """A probe kind's broken section, unvalidated, kept only so that the cross checks still see
    the names it declares: a device naming a credential whose key is too short gets no second
    problem ("no credentials named ..."). A draft with problems never runs."""
    model = Inventory.model_fields[key].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model.model_construct(**{str(k): v for k, v in value.items()})


def _sites(
    value: object, doc: Document, problems: list[ConfigProblem]
) -> tuple[list[Site], list[int]]:
    if not isinstance(value, list):
        try:
            Inventory.model_validate({"sites": value})
        except ValidationError as exc:
            problems += validation_problems(exc, doc)
        return [], []
    sites, positions = [], []
    for i, item in enumerate(value):
        try:
            sites.append(Site.model_validate(item))
        except ValidationError as exc:
            problems += validation_problems(exc, doc, ("sites", i))
            continue
        positions.append(i)
    return sites, positions


def load_inventory(path: str | Path, snmp_profiles: Collection[str] | None = None) -> Inventory:
    """Read and validate an inventory file; raise ConfigError listing every problem found.

    ``snmp_profiles``: the profile names devices may use (default: the bundled profiles').
    """
    return _checked(draft_inventory(load_yaml(Path(path))), snmp_profiles)


def parse_inventory(
    text: str, filename: str = "<inventory>", snmp_profiles: Collection[str] | None = None
) -> Inventory:
    return _checked(draft_inventory(parse_yaml(text, filename)), snmp_profiles)


def _checked(draft: Draft, snmp_profiles: Collection[str] | None) -> Inventory:
    if snmp_profiles is None:
        snmp_profiles = bundled_profile_names() if draft.uses("snmp") else ()
    problems = draft.checked(snmp_profiles)
    if problems:
        raise ConfigError(problems)
    return draft.inventory


def bundled_profile_names() -> set[str]:
    return profile_names(DEFAULT_DIR)
