"""Safe YAML with source positions (stage: load, first half).

Input: the bytes of one spec file. Output: a :class:`Document` holding plain JSON-like data
(dicts, lists, str, int, float, bool, None) plus the source position of every mapping key, every
value and every sequence item, addressed by its path (a tuple of keys and list indices).

The document is built straight from PyYAML's *event* stream, never by PyYAML's constructors, so
nothing is ever instantiated from a tag and nothing is ever expanded: explicit tags, anchors and
aliases are rejected at the first one seen, which also makes alias bombs harmless. Duplicate keys,
empty files, NUL bytes, bytes that are not UTF-8, oversized files, over-deep nesting, several
documents and a top level that is not a mapping are all reported as located diagnostics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from nkigen.diagnostics import Diagnostic, Loc, NkigenError

MAX_BYTES = 1 << 20      # 1 MiB: a spec is a page of YAML
MAX_DEPTH = 32           # specs nest four levels deep at most

Path = tuple[str | int, ...]

# YAML 1.2 numbers that PyYAML's 1.1 resolver leaves as strings (``1e-5``, ``.5e3``).
_FLOAT12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_KEEP_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
}


@dataclass(frozen=True)
class ScalarSource:
    """Where a string scalar's text sits in the file, when its characters map one to one.

    ``exact`` is True for single-line plain or quoted scalars without escapes: then character
    ``i`` of the value is at column ``col + i`` of ``line``.
    """

    line: int
    col: int
    exact: bool


@dataclass
class Document:
    """Plain data plus positions; ``locs[path]`` is the value's position, ``key_locs`` the key's."""

    path: str
    data: object
    locs: dict[Path, Loc] = field(default_factory=dict)
    key_locs: dict[Path, Loc] = field(default_factory=dict)
    scalars: dict[Path, ScalarSource] = field(default_factory=dict)

    def loc(self, path: Path) -> Loc:
        """Position of the node at ``path``, or of its nearest existing ancestor."""
        p = tuple(path)
        while p not in self.locs and p:
            p = p[:-1]
        return self.locs.get(p, Loc(self.path, 1, 1))

    def key_loc(self, path: Path) -> Loc:
        """Position of the key naming ``path`` (falls back to the value's position)."""
        return self.key_locs.get(tuple(path)) or self.loc(path)

    def text_loc(self, path: Path, offset: int) -> Loc:
        """Position of character ``offset`` inside the string scalar at ``path``."""
        src = self.scalars.get(tuple(path))
        if src is None or not src.exact:
            return self.loc(path)
        return Loc(self.path, src.line, src.col + offset)


def _field(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).removeprefix(".")


def _loc(path: str, mark) -> Loc:
    return Loc(path, mark.line + 1, mark.column + 1)


def _fail(loc: Loc, rule: str, got: object = None, fix: str | None = None,
          field: str = "") -> NkigenError:
    return NkigenError(Diagnostic(loc, field, rule, None if got is None else str(got), fix))


def decode(raw: bytes, path: str) -> str:
    """Bytes to text, rejecting what is not a small UTF-8 text file."""
    if len(raw) > MAX_BYTES:
        raise _fail(Loc(path), f"file is too large for a spec (limit {MAX_BYTES} bytes)",
                    f"{len(raw)} bytes", "a spec is a short YAML file; check the path")
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        col = nul - (raw.rfind(b"\n", 0, nul) + 1) + 1
        raise _fail(Loc(path, line, col), "file is binary, not YAML text", "a NUL byte",
                    "give the path of a .yaml spec")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = len(raw[raw.rfind(b"\n", 0, e.start) + 1:e.start].decode("utf-8", "replace")) + 1
        raise _fail(Loc(path, line, col), "file is not valid UTF-8",
                    f"byte 0x{raw[e.start]:02x}", "save the spec as UTF-8") from None
    return text.removeprefix("\ufeff")


def _resolve(loader: yaml.SafeLoader, ev: Any) -> object:
    """A scalar's value: null/bool/int/float per YAML, anything else stays a string."""
    if ev.style is not None:          # quoted or block scalar: always a string
        return ev.value
    tag = loader.resolve(yaml.ScalarNode, ev.value, (True, False))
    if tag in _KEEP_TAGS:
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark)
        return loader.construct_object(node)
    if _FLOAT12.match(ev.value):
        return float(ev.value)
    return ev.value


def _scalar_source(text: str, ev: Any) -> ScalarSource:
    s, e = ev.start_mark, ev.end_mark
    raw = text[s.index:e.index]
    exact = False
    if s.line == e.line:
        if ev.style is None:
            exact = raw == ev.value
        elif ev.style in ("'", '"'):
            exact = raw[1:-1] == ev.value
    col = s.column + 1 + (1 if ev.style in ("'", '"') else 0)
    return ScalarSource(s.line + 1, col, exact)


class _Builder:
    """Turns the event stream into plain data, recording positions; iterative, no recursion."""

    def __init__(self, text: str, path: str):
        self.text = text
        self.path = path
        self.doc = Document(path, None)
        self.loader = yaml.SafeLoader("")

    def build(self) -> Document:
        # stack entries: [container, path, pending_key, pending_key_loc, seen_keys]
        stack: list[list] = []
        root_set = False
        docs = 0
        for ev in yaml.parse(self.text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.DocumentStartEvent):
                docs += 1
                if docs > 1:
                    raise _fail(_loc(self.path, ev.start_mark),
                                "a spec file holds exactly one YAML document", "a second '---'",
                                "put each spec in its own file")
                continue
            if isinstance(ev, yaml.AliasEvent):
                raise _fail(_loc(self.path, ev.start_mark), "YAML aliases are not allowed",
                            f"*{ev.anchor}", "write the value out in full")
            if isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                if ev.anchor is not None:
                    raise _fail(_loc(self.path, ev.start_mark), "YAML anchors are not allowed",
                                f"&{ev.anchor}", "write the value out in full and drop the anchor")
                if ev.tag is not None:
                    tag = ev.tag.replace("tag:yaml.org,2002:", "!!")
                    raise _fail(_loc(self.path, ev.start_mark), "YAML tags are not allowed",
                                tag, "remove the tag; specs hold plain values only")
            if isinstance(ev, yaml.ScalarEvent):
                try:
                    value = _resolve(self.loader, ev)
                    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
                        raise ValueError   # 0x... or 0o...: a value no message could print
                except ValueError:      # an integer past Python's int-from-text digit limit
                    raise _fail(_loc(self.path, ev.start_mark), "number is too large",
                                f"an integer of {len(ev.value)} characters",
                                "use an integer below 2**63, or a float such as 1.0e23") \
                        from None
                self._add(stack, value, ev, scalar=True)
                if not stack:
                    root_set = True
            elif isinstance(ev, yaml.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise _fail(_loc(self.path, ev.start_mark), "YAML nesting is too deep",
                                f"more than {MAX_DEPTH} levels", "a spec nests 4 levels at most")
                container: object = {} if isinstance(ev, yaml.MappingStartEvent) else []
                cpath = self._add(stack, container, ev, scalar=False)
                stack.append([container, cpath, None, None, False])
            elif isinstance(ev, yaml.CollectionEndEvent):
                stack.pop()
                if not stack:
                    root_set = True
        if not root_set or self.doc.data is None:
            raise _fail(Loc(self.path, 1, 1), "spec file is empty", None,
                        "start from the example in the spec-language guide")
        if not isinstance(self.doc.data, dict):
            got = "a list" if isinstance(self.doc.data, list) else f"{self.doc.data!r}"
            raise _fail(self.doc.locs[()], "the top level of a spec must be a mapping",
                        got[:40], "write 'key: value' lines, e.g. 'nkigen: 1'")
        return self.doc

    def _add(self, stack: list[list], value: object, ev, scalar: bool) -> Path:
        loc = _loc(self.path, ev.start_mark)
        if not stack:
            self.doc.data = value
            self.doc.locs[()] = loc
            return ()
        top = stack[-1]
        container, cpath = top[0], top[1]
        if isinstance(container, list):
            vpath = (*cpath, len(container))
            container.append(value)
        elif top[4] is False:                 # expecting a key
            if not scalar:
                raise _fail(loc, "mapping keys must be plain names", "a collection as a key",
                            "write 'name: value'")
            key = ev.value
            if key in container:
                first = self.doc.key_locs[(*cpath, key)]
                raise _fail(loc, f"duplicate key '{key}' (first defined at line {first.line})",
                            None, "remove or rename one of them",
                            _field((*cpath, key)))
            top[2], top[3], top[4] = key, loc, True
            return cpath
        else:                                  # the value of the pending key
            key = top[2]
            vpath = (*cpath, key)
            container[key] = value
            self.doc.key_locs[vpath] = top[3]
            top[2], top[3], top[4] = None, None, False
        self.doc.locs[vpath] = loc
        if scalar and isinstance(value, str):
            self.doc.scalars[vpath] = _scalar_source(self.text, ev)
        return vpath


MAX_INT_BITS = 4096
"""Larger YAML integers are load errors: far past every limit the validator names (int64 at
most), and too long for Python to print (its 4300-digit int-to-text limit)."""


def parse_yaml(text: str, path: str) -> Document:
    """Text of one spec file to a positioned :class:`Document` (raises NkigenError)."""
    try:
        return _Builder(text, path).build()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _loc(path, mark) if mark is not None else Loc(path)
        problem = (e.problem or "invalid YAML").strip()
        ctx = f" {e.context}" if e.context else ""
        raise _fail(loc, f"YAML syntax error{ctx}: {problem}", None,
                    "check indentation, colons, quotes and brackets") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise _fail(Loc(path, line, col), "control characters are not allowed in a spec",
                    f"character U+{e.character:04X}" if isinstance(e.character, int)
                    else repr(e.character), "delete it; specs are plain text") from None
    except yaml.YAMLError as e:
        raise _fail(Loc(path, 1, 1), "YAML error", str(e).splitlines()[0],
                    "fix the YAML") from None
