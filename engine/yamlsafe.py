"""Hostile-input-proof YAML loading that remembers where every value came from.

We compose the YAML node graph with ruamel.yaml and build plain Python values from it
ourselves instead of letting a constructor do it. That gives us, in one pass:

* no code execution: any tag other than the core schema's is a problem, never a call;
* a bound on work: file size, nesting depth, alias count and total nodes are capped, so
  an alias bomb or 10,000 nested brackets is a one-line error, not a hung process;
* duplicate keys rejected;
* floats become ``Decimal`` from their source text, so ``30.00`` is exact;
* a ``(line, col)`` for every path, so later validation can say ``file:line:col``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import DefinitionError, Problem

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 100_000

PathKey = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_ALLOWED_SCALARS = {"str", "int", "float", "bool", "null", "timestamp"}


@dataclass
class Document:
    """Plain data loaded from one YAML file, with the position of each path in it."""

    file: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    text: str = ""

    def where(self, path: PathKey) -> tuple[int, int]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: PathKey, message: str) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, message)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[PathKey, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.nodes = 0
        self.aliases: set[int] = set()
        self.seen_anchor_uses = 0

    def _problem(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, message))

    def build(self, node: Node, path: PathKey, depth: int, stack: frozenset[int]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Abort(node, f"more than {MAX_NODES} values (alias expansion?): refused")
        if depth > MAX_DEPTH:
            raise _Abort(node, f"nested deeper than {MAX_DEPTH} levels: refused")
        if id(node) in stack:
            raise _Abort(node, "recursive alias: refused")
        if getattr(node, "anchor", None):
            # compose() hands us the same node object for every alias of an anchor
            if id(node) in self.aliases:
                self.seen_anchor_uses += 1
                if self.seen_anchor_uses > MAX_ALIASES:
                    raise _Abort(node, f"more than {MAX_ALIASES} aliases: refused")
            self.aliases.add(id(node))
        mark = node.start_mark
        self.positions.setdefault(path, (mark.line + 1, mark.column + 1))
        tag = str(getattr(node.tag, "value", node.tag) or "")
        if isinstance(node, MappingNode):
            if tag != _CORE + "map":
                self._problem(node, f"tag {tag!r} is not allowed; remove it")
            out: dict[str, Any] = {}
            inner = stack | {id(node)}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    self._problem(key_node, "mapping keys must be plain scalars")
                    continue
                key_tag = str(getattr(key_node.tag, "value", key_node.tag) or "")
                if key_tag == _CORE + "merge":
                    self._problem(key_node, "merge keys ('<<') are not supported; write keys out")
                    continue
                key = key_node.value
                if key in out:
                    self._problem(key_node, f"duplicate key {key!r}")
                    continue
                kpath = (*path, key)
                km = key_node.start_mark
                self.positions[kpath] = (km.line + 1, km.column + 1)
                out[key] = self.build(value_node, kpath, depth + 1, inner)
            return out
        if isinstance(node, SequenceNode):
            if tag != _CORE + "seq":
                self._problem(node, f"tag {tag!r} is not allowed; remove it")
            inner = stack | {id(node)}
            return [
                self.build(item, (*path, i), depth + 1, inner) for i, item in enumerate(node.value)
            ]
        assert isinstance(node, ScalarNode)
        kind = tag[len(_CORE) :] if tag.startswith(_CORE) else ""
        if kind not in _ALLOWED_SCALARS:
            self._problem(node, f"tag {tag!r} is not allowed; remove it")
            return node.value
        text = node.value
        if node.style == ">" and isinstance(text, str):
            text = text.replace("\a", "")  # ruamel marks fold points of > scalars with BEL
        return _scalar(kind, text)


class _Abort(Exception):
    def __init__(self, node: Node, message: str) -> None:
        self.node = node
        self.message = message


def _scalar(kind: str, text: str) -> Any:
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        clean = text.replace("_", "")
        try:
            return int(clean, 0) if clean[:2].lower() in ("0x", "0o", "0b") else int(clean)
        except ValueError:
            return text
    if kind == "float":
        clean = text.replace("_", "")
        try:
            value = Decimal(clean)
        except InvalidOperation:
            return text  # .inf / .nan: left as text, rejected by the typed models
        return value if value.is_finite() else text
    return text  # str and timestamp: typed models parse dates themselves


def load_text(text: str, file: str) -> Document:
    """Parse YAML text into a :class:`Document`; raise DefinitionError on any problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise DefinitionError(
            [Problem(file, 1, 1, f"file is larger than {MAX_BYTES} bytes: refused")]
        )
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True  # we report duplicates ourselves, all at once
    try:
        root = yaml.compose(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = (exc.problem or exc.context or "invalid YAML").strip()
        raise DefinitionError([Problem(file, line, col, f"invalid YAML: {reason}")]) from None
    except YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid YAML"
        raise DefinitionError([Problem(file, 1, 1, f"invalid YAML: {first}")]) from None
    except RecursionError:
        raise DefinitionError(
            [Problem(file, 1, 1, f"nested deeper than {MAX_DEPTH} levels: refused")]
        ) from None
    if root is None:
        raise DefinitionError([Problem(file, 1, 1, "file is empty")])
    builder = _Builder(file)
    try:
        data = builder.build(root, (), 0, frozenset())
    except _Abort as abort:
        mark = abort.node.start_mark
        raise DefinitionError(
            [Problem(file, mark.line + 1, mark.column + 1, abort.message)]
        ) from None
    except RecursionError:
        raise DefinitionError(
            [Problem(file, 1, 1, f"nested deeper than {MAX_DEPTH} levels: refused")]
        ) from None
    if builder.problems:
        raise DefinitionError(builder.problems)
    return Document(file, data, builder.positions, text)


def load_file(path: Path | str) -> Document:
    """Read and parse one YAML file, refusing oversized files before reading them whole."""
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DefinitionError([Problem(name, 1, 1, f"cannot read: {exc.strerror}")]) from None
    if size > MAX_BYTES:
        raise DefinitionError(
            [Problem(name, 1, 1, f"file is larger than {MAX_BYTES} bytes ({size}): refused")]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([Problem(name, 1, 1, f"cannot read as UTF-8: {exc}")]) from None
    return load_text(text, name)
