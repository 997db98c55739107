"""The spec's one namespace (stage: parse): declared names, reserved words, suggestions.

Input: the sizes, params and tensors of a loaded document. Output: a :class:`Namespace` that
answers "what is this name?" for the statement and expression parsers, plus diagnostics for names
that collide or would be unsafe as identifiers in the generated Python kernel.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from nkigen.diagnostics import Diagnostic, Loc
from nkigen.ir import Func, ReduceKind, is_index_name

FUNCTIONS: frozenset[str] = frozenset([*(f.value for f in Func), *(r.value for r in ReduceKind),
                                       "where", "cumsum"])
# module names the generated kernel imports; a spec name must not shadow them
GENERATED: frozenset[str] = frozenset(
    {"nki", "nl", "nisa", "np", "numpy", "math", "ml_dtypes", "neuronxcc", "nkigen"}
)
BUILTINS: frozenset[str] = frozenset(n for n in dir(builtins) if not n.startswith("__"))


class Kind(Enum):
    SIZE = "size"
    PARAM = "param"
    INPUT = "input"
    OUTPUT = "output"
    TEMP = "temp"

    @property
    def is_tensor(self) -> bool:
        return self in (Kind.INPUT, Kind.OUTPUT, Kind.TEMP)


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be used as a spec name, or None if it can.

    Every name this accepts must also pass :func:`nkigen.codegen.names.checked` (spec names
    reach the generated kernel as Python identifiers); a test keeps the two aligned.
    """
    if not (name.isascii() and name.isidentifier()):
        return "is not a plain ASCII identifier"
    if keyword.iskeyword(name):
        return "is a Python keyword"
    if keyword.issoftkeyword(name):
        return "is a Python soft keyword"
    if name in FUNCTIONS:
        return "is a function of the spec language"
    if name in BUILTINS:
        return "is a Python builtin"
    if name in GENERATED:
        return "is a module name used by the generated kernel"
    if name.startswith("__"):
        return "starts with '__' (reserved)"
    return None


def article(word: str) -> str:
    """'an input', 'a size'."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def tidy_got(rule: str, got: str | None) -> str | None:
    """Drop a 'got' value that the rule already quotes (``undefined tensor 'aa'``)."""
    if got is not None and len(got) > 2 and got[0] == got[-1] == "'" and got in rule:
        return None
    return got


def suggest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str], otherwise: str | None = None) -> str | None:
    close = suggest(word, choices)
    return f"did you mean '{close}'?" if close else otherwise


@dataclass
class Namespace:
    """Declared names: name -> kind, plus where each was declared."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    locs: dict[str, Loc] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    int_params: dict[str, int] = field(default_factory=dict)
    params: dict[str, int | float] = field(default_factory=dict)
    collided: set[str] = field(default_factory=set)   # declared twice (reported once)
    initial: dict[str, object] = field(default_factory=dict)   # 1.1: tensor -> `initial:` value

    def declare(self, name: str, kind: Kind, loc: Loc, fieldpath: str) -> list[Diagnostic]:
        """Add a name; report a collision or an unsafe name (then the name is not added)."""
        why = reserved_reason(name)
        if why is not None:
            self.kinds.setdefault(name, kind)   # still declared: avoid cascading errors
            self.locs.setdefault(name, loc)
            return [Diagnostic(loc, fieldpath, f"{kind.value} name {why}", repr(name),
                               f"rename it, e.g. '{name}_'")]
        if name in self.kinds:
            self.collided.add(name)
            other = self.kinds[name]
            first = self.locs[name]
            return [Diagnostic(loc, fieldpath,
                               f"name already used by {other.value} '{name}' (line {first.line}); "
                               "tensors, sizes, params and indices share one namespace",
                               None, "rename one of them")]
        self.kinds[name] = kind
        self.locs[name] = loc
        self.fields[name] = fieldpath
        return []

    def kind(self, name: str) -> Kind | None:
        return self.kinds.get(name)

    def names(self, *kinds: Kind) -> list[str]:
        return [n for n, k in self.kinds.items() if not kinds or k in kinds]

    @property
    def sizes(self) -> list[str]:
        return self.names(Kind.SIZE)

    @property
    def tensors(self) -> list[str]:
        return [n for n, k in self.kinds.items() if k.is_tensor]


def index_name_problem(name: str, ns: Namespace) -> tuple[str, str] | None:
    """(rule, fix) if ``name`` cannot be an index name, else None."""
    kind = ns.kind(name)
    if kind is not None:
        return (f"'{name}' is {article(kind.value)}, not an index",
                "use a lower-case index name that is not declared, e.g. i")
    if not is_index_name(name):
        return ("index names are lower-case identifiers",
                did_you_mean(name, ns.names(), "use e.g. m, n, k") or "use e.g. m, n, k")
    why = reserved_reason(name)
    if why is not None:
        return (f"index name {why}", f"rename it, e.g. '{name}_' or '{name[0]}'")
    return None
