"""A configuration file read the way every netmon file is: problems as ``file:line: field: message``.

A file is parsed once (PyYAML's C loader when it is available): the node tree is composed, the
line of every key and item is indexed from it, and the data is constructed from the same node.
Used by the inventory (``netmon.inventory.loader``) and the SNMP profiles
(``probes.snmp_profiles``); it sits outside both so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from netmon.errors import ConfigError, ConfigProblem
from netmon.schema import Loc, error_loc, error_message, field_name

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """A parsed YAML file: its data, the line of each location, and duplicate-key problems."""

    filename: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of the nearest enclosing location the file has."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def problem(self, loc: Loc, message: str) -> ConfigProblem:
        return ConfigProblem(self.filename, self.line_of(loc), field_name(loc), message)


def load_yaml(path: Path) -> Document:
    """Read and parse ``path`` (a ConfigError if it cannot be read or is not YAML)."""
    return parse_yaml(read_text(path), str(path))


def read_text(path: Path) -> str:
    """The file's text; a ConfigError (``file: cannot read: ...``) if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc}")]) from exc


def parse_yaml(text: str, filename: str) -> Document:
    """Parse ``text`` once; a YAML syntax error is a ConfigError with its line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, *_syntax_error(exc))]) from exc
    finally:
        loader.dispose()
    doc = Document(filename, data)
    if node is not None:
        _index_lines(node, (), doc)
    return doc


def _syntax_error(exc: yaml.YAMLError) -> tuple[int | None, str, str]:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    problem = getattr(exc, "problem", None) or str(exc)
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark:
        problem += f" ({context} at line {cmark.line + 1})"
    return line, "", f"YAML syntax: {problem}"


def _index_lines(node: yaml.Node, path: Loc, doc: Document) -> None:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                line = key.start_mark.line + 1
                doc.problems.append(
                    ConfigProblem(doc.filename, line, field_name(path + (name,)), "duplicate key")
                )
            seen.add(name)
            _index_lines(value, path + (name,), doc)
            doc.lines[path + (name,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), doc)


def validation_problems(exc: ValidationError, doc: Document, at: Loc = ()) -> list[ConfigProblem]:
    """pydantic's errors as located problems; ``at`` is where the validated value sits."""
    return [error_problem(err, doc, at) for err in exc.errors()]


def error_problem(err: ErrorDetails, doc: Document, at: Loc = ()) -> ConfigProblem:
    return doc.problem(at + error_loc(err), error_message(err))
