"""The lint table's row types: the documented NKI API as data, one row per fact, each citing
its source document and API version.

Stage: lint (specification). Rows are frozen dataclasses; the rows themselves live in
``api_nki`` / ``api_classic`` (signatures, names, operator and activation tables, extracted
from the public API reference by ``python -m nkigen.lint.extract``) and in ``rules`` (the
rules the checker enforces: removed and deprecated names, engine/op legality, dtype, memory
and structural rules, written by hand from the docs).

Citation keys (all aws-neuron/aws-neuron-sdk): ``S29`` = tag v2.29.0 ``nki/`` (SDK 2.29, the
current ``nki`` API at version 0.3, which nkigen targets); ``SH`` = HEAD ``nki/`` (81ce03ae,
SDK 2.32 = nki 0.6; used for what changed after 0.3); ``S25`` = tag v2.25.0 ``general/nki/``
(the classic ``neuronxcc.nki`` API).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Api(Enum):
    """An NKI API generation (a lint dialect)."""

    NKI = "nki"              # current standalone ``nki`` (0.3; docs S29 nki/api/)
    CLASSIC = "neuronxcc"    # classic ``neuronxcc.nki`` (SDK 2.21-2.26; docs S25 general/nki/)


class Kind(Enum):
    """How a parameter may be passed (Python's parameter kinds)."""

    POSITIONAL = "positional_or_keyword"
    KEYWORD_ONLY = "keyword_only"
    VAR_POSITIONAL = "var_positional"   # *args
    VAR_KEYWORD = "var_keyword"         # **kwargs


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    required: bool


@dataclass(frozen=True)
class Signature:
    """A documented function: ``module`` is ``nki``, ``nki.isa``, ``nki.language`` (the classic
    API uses the same short module names under ``neuronxcc``)."""

    api: Api
    module: str
    name: str
    params: tuple[Param, ...]
    source: str
    version: str

    @property
    def var_keyword(self) -> bool:
        return any(p.kind is Kind.VAR_KEYWORD for p in self.params)

    @property
    def var_positional(self) -> bool:
        return any(p.kind is Kind.VAR_POSITIONAL for p in self.params)

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name and p.kind in (Kind.POSITIONAL, Kind.KEYWORD_ONLY):
                return p
        return None

    def positional(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind is Kind.POSITIONAL)


@dataclass(frozen=True)
class Name:
    """A documented module-level name that is not a function (dtype, buffer, enum, class,
    constant, submodule)."""

    api: Api
    module: str
    name: str
    source: str
    version: str


@dataclass(frozen=True)
class AluOp:
    """A row of the ALU operator table (``op`` names of ``nki.language``)."""

    api: Api
    name: str                 # e.g. "add" (nl.add)
    category: str             # "bitvec" | "arithmetic" | "unary"
    reduce_legal: bool        # "Legal Reduction op" column
    engines: tuple[str, ...]  # "Supported Engine" column (classic only; () when not documented)
    source: str
    version: str


@dataclass(frozen=True)
class ActFunc:
    """A row of the activation function table (``op`` of ``nisa.activation``)."""

    api: Api
    name: str                 # e.g. "exp" (nl.exp)
    source: str
    version: str


class Level(Enum):
    ERROR = "error"           # the documented API rejects it (or its result is undefined)
    DEPRECATED = "deprecated"  # documented as deprecated / kept for backward compatibility
    DISCOURAGED = "discouraged"  # documented as a fall-back only / used by no documented kernel


@dataclass(frozen=True)
class NameStatus:
    """A name that is removed from, or deprecated in, an API version."""

    api: Api
    module: str
    name: str
    level: Level              # ERROR = removed, DEPRECATED = deprecated
    use_instead: str
    source: str
    version: str              # "nki 0.3": the version from which the status holds

    def since(self) -> tuple[int, int]:
        major, minor = self.version.split()[1].split(".")[:2]
        return int(major), int(minor)


@dataclass(frozen=True)
class Rule:
    """One rule the checker enforces (the catalogue ``nkigen lint --rules`` prints)."""

    id: str                   # "engine.tensor_scalar-gpsimd", printed as lint[id]
    apis: tuple[Api, ...]
    level: Level
    rule: str                 # the rule in our own words
    fix: str                  # the usual fix
    source: str
    version: str
