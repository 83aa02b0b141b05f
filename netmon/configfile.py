"""A configuration file read the way every netmon file is: problems as ``file:line: field: message``.

A file is parsed once (PyYAML's C loader when it is available): the node tree is composed, the
line of every key and item is indexed from it, and the data is constructed from the same node.
Used by the inventory (``netmon.inventory.loader``) and the SNMP profiles
(``probes.snmp_profiles``); it sits outside both so neither imports the other.

No file makes it raise anything but a ConfigError, in bounded time and memory:

- at most :data:`MAX_BYTES`; bytes that are not UTF-8 are reported with their byte offset;
- plain YAML values only (:data:`ALLOWED_TAGS`): no ``!!binary``, ``!!set``, ``!!python/...``
  or local tags; a value that does not fit its tag (``!!int x``, month 13) is an error at its line;
- nesting at most :data:`MAX_DEPTH` levels; keys are scalars;
- aliases are walked once, never expanded: an alias inside the node it names is an error, and
  so are aliases that would make the data more than :data:`ALIAS_RATIO` times (plus
  :data:`ALIAS_ALLOWANCE` nodes) the size written -- a "billion laughs" of 342 bytes is refused
  in microseconds instead of expanding to gigabytes in the validators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from netmon.errors import ConfigError, ConfigProblem
from netmon.schema import Loc, error_loc, error_message, field_name

MAX_BYTES = 64 * 1024 * 1024  # an inventory of 50,000 devices is about 4 MB
MAX_DEPTH = 64  # an inventory nests 8 levels; libyaml's own limit (1000) is past Python's stack
ALIAS_RATIO = 10  # aliases may add this many nodes per node written ...
ALIAS_ALLOWANCE = 100_000  # ... or this many, whichever is more
_YAML = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _YAML + t for t in ("null", "bool", "int", "float", "str", "timestamp", "seq", "map", "merge")
)

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Constructor = Callable[[Any, yaml.Node], Any]


def _checked(name: str, construct: _Constructor) -> _Constructor:
    """``construct`` for ``!!name``, its failures (``int("x")``, month 13) a located YAML error."""

    def checked(loader: Any, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            # the value is not shown: it may be a secret
            raise yaml.constructor.ConstructorError(
                None, None, f"not a valid !!{name}", node.start_mark
            ) from exc

    return checked


_Loader: type[yaml.SafeLoader] = type("_Loader", (_Base,), {})
for _name in ("int", "float", "bool", "timestamp"):
    _Loader.add_constructor(_YAML + _name, _checked(_name, _Base.yaml_constructors[_YAML + _name]))


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
    """The file's text; a ConfigError (``file: cannot read: ...``) if it cannot be read, is
    larger than :data:`MAX_BYTES` or is not UTF-8."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc}")]) from exc
    if len(data) > MAX_BYTES:
        message = f"larger than {MAX_BYTES // 2**20} MiB: not a configuration file"
        raise ConfigError([ConfigProblem(str(path), None, "", message)])
    return decode_utf8(data, str(path))


def decode_utf8(data: bytes, filename: str) -> str:
    """``data`` as UTF-8; else a ConfigError naming the first bad byte, its line and offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start}"
        raise ConfigError([ConfigProblem(filename, line, "", message)]) from None


def parse_yaml(text: str, filename: str) -> Document:
    """Parse ``text`` once; a YAML syntax error, a disallowed tag or a limit passed is a
    ConfigError with its line. Linear in the size of the text, whatever its aliases."""
    loader = _Loader(text)
    doc = Document(filename, None)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        if node is not None:
            _index(node, doc)  # before constructing: the limits bound what is built
            doc.data = loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError([_value_error(exc, node, doc)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, *_syntax_error(exc, text))]) from exc
    except UnicodeEncodeError as exc:  # a lone surrogate in a str given by code (files are decoded)
        raise ConfigError([ConfigProblem(filename, None, "", f"not UTF-8: {exc.reason}")]) from exc
    except RecursionError as exc:  # pure-Python PyYAML only (libyaml stops at 1000 levels)
        raise ConfigError([ConfigProblem(filename, None, "", "nested too deeply")]) from exc
    finally:
        loader.dispose()
    return doc


def _syntax_error(exc: yaml.YAMLError, text: str) -> tuple[int | None, str, str]:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        at = text.count("\n", 0, exc.position or 0) + 1
        return at, "", f"YAML: character U+{int(exc.character or 0):04X} is not allowed"
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    problem = getattr(exc, "problem", None) or str(exc)
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark:
        problem += f" ({context} at line {cmark.line + 1})"
    return line, "", f"YAML syntax: {problem}"


def _value_error(
    exc: yaml.constructor.ConstructorError, root: yaml.Node | None, doc: Document
) -> ConfigProblem:
    """A value that does not fit its tag, located at its line and field."""
    mark = exc.problem_mark
    if root is None or mark is None:
        return ConfigProblem(doc.filename, None, "", f"YAML: {exc.problem}")
    path = _path_of(root, mark.index)
    name = field_name(path) if path is not None else ""
    return ConfigProblem(doc.filename, mark.line + 1, name, f"YAML: {exc.problem}")


def _path_of(root: yaml.Node, index: int) -> Loc | None:
    """The location of the node that starts at character ``index`` (each node visited once)."""
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node.start_mark.index == index:
            return path
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, path + (str(key.value),)) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (i,)) for i, item in enumerate(node.value))
    return None


def _index(root: yaml.Node, doc: Document) -> None:
    """Record the line of every location and duplicate keys, check tags, keys and depth: a
    pre-order walk, each node once (an alias is not followed). If some node was reached twice
    (an alias), :func:`_check_aliases` then bounds what the aliases expand to. O(nodes)."""
    # hot loop: once per node of the file; 50,000 devices (300,000 locations) in ~0.4 s
    lines, visited, aliased = doc.lines, set(), False
    lines[()] = root.start_mark.line + 1
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            aliased = True
            continue
        visited.add(id(node))
        if node.tag not in ALLOWED_TAGS or len(path) > MAX_DEPTH:
            _refuse(node, path, doc)
        if isinstance(node, yaml.MappingNode):
            names: set[str] = set()
            children = []
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag not in ALLOWED_TAGS:
                    _refuse(key, path, doc)
                name = str(key.value)
                lines[path + (name,)] = key.start_mark.line + 1
                if name in names:
                    doc.problems.append(doc.problem(path + (name,), "duplicate key"))
                names.add(name)
                children.append((value, path + (name,)))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
            stack.extend((item, path + (i,)) for i, item in reversed(list(enumerate(node.value))))
    if aliased:
        _check_aliases(root, doc)


def _refuse(node: yaml.Node, path: Loc, doc: Document) -> None:
    """The ConfigError for a node :func:`_index` does not take."""
    if node.tag not in ALLOWED_TAGS:
        tag = node.tag.replace(_YAML, "!!")
        raise _problem(doc, path, f"tag {tag} is not allowed: netmon files use plain YAML values")
    if len(path) > MAX_DEPTH:
        raise _problem(doc, path[:MAX_DEPTH], f"nested more than {MAX_DEPTH} levels deep")
    raise _problem(doc, path, "a key must be a plain value, not a list or mapping")


def _check_aliases(root: yaml.Node, doc: Document) -> None:
    """A ConfigError if an alias is inside the node it names, or if the aliases make the data
    more than :data:`ALIAS_RATIO` times (plus :data:`ALIAS_ALLOWANCE`) the nodes written.
    A post-order walk, each node once, with each node's expanded size memoised: O(nodes)."""
    size: dict[int, int] = {}  # id(node) -> nodes in its expansion, once walked
    open_: set[int] = set()  # nodes being walked: an alias to one is a cycle
    biggest = (0, 1)  # (expansion of one alias, the line it is used at)
    stack: list[tuple[yaml.Node, Loc, bool]] = [(root, (), False)]
    while stack:
        node, path, walked = stack.pop()
        if walked:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(child)] for child, _ in _children(node, path))
        elif id(node) in size:
            biggest = max(biggest, (size[id(node)], doc.line_of(path) or 1))
        elif id(node) in open_:
            raise _problem(doc, path, "an alias inside the node it refers to")
        else:
            open_.add(id(node))
            stack.append((node, path, True))
            stack.extend((child, at, False) for child, at in reversed(_children(node, path)))
    written, expanded = len(size), size[id(root)]
    allowed = max(ALIAS_ALLOWANCE, ALIAS_RATIO * written)
    if expanded - written > allowed:
        doc.problems.clear()
        message = (f"aliases expand {written} nodes to {_count(expanded)} (at most {allowed} "
                   f"more allowed; the alias here alone is {_count(biggest[0])})")  # fmt: skip
        raise ConfigError([ConfigProblem(doc.filename, biggest[1], "", message)])


def _children(node: yaml.Node, path: Loc) -> list[tuple[yaml.Node, Loc]]:
    """The values a collection holds, with their locations (keys are scalars: not counted)."""
    if isinstance(node, yaml.MappingNode):
        return [(value, path + (str(key.value),)) for key, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return [(item, path + (i,)) for i, item in enumerate(node.value)]
    return []


def _count(n: int) -> str:
    return str(n) if n < 10**12 else f"about 10^{len(str(n)) - 1}"


def _problem(doc: Document, path: Loc, message: str) -> ConfigError:
    return ConfigError([doc.problem(path, message)])


def validation_problems(exc: ValidationError, doc: Document, at: Loc = ()) -> list[ConfigProblem]:
    """pydantic's errors as located problems; ``at`` is where the validated value sits."""
    return [error_problem(err, doc, at) for err in exc.errors()]


def error_problem(err: ErrorDetails, doc: Document, at: Loc = ()) -> ConfigProblem:
    return doc.problem(at + error_loc(err), error_message(err))
