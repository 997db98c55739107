"""Stage analyze: the frozen result types of the analysis (Spec -> Analysis).

Input: nothing (pure data). Output: :class:`Analysis` and its parts, consumed by codegen, the
reference, the build and the tuner. Every sympy expression here is in size symbols
(``nkigen.ir.size_symbol``) and index symbols (``nkigen.ir.index_symbol``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import sympy

from nkigen.analysis.prover import SizeDomain
from nkigen.diagnostics import Loc
from nkigen.ir import Access, Reduce, Spec, Statement


class ExtentSource(Enum):
    """Where an index's extent came from."""

    DIRECT = "direct"   # the index is the whole index expression of a tensor dimension
    RANGES = "ranges"   # the spec's ``ranges:`` entry


@dataclass(frozen=True)
class IndexExtent:
    """``name`` ranges over ``0 .. extent - 1``; ``where`` says which use or entry fixed it."""

    name: str
    extent: sympy.Expr
    source: ExtentSource
    where: str                       # e.g. "a[m, k] dim 1" or "ranges.r"
    loc: Loc | None = field(default=None, compare=False)


class LoopKind(Enum):
    LHS = "lhs"         # an index of the left-hand side
    SUM = "sum"         # summed by the einsum rule of ``+=``
    REDUCE = "reduce"   # bound by a reduction call ``sum(e, j)`` inside the right-hand side


@dataclass(frozen=True)
class LoopIndex:
    name: str
    kind: LoopKind
    extent: sympy.Expr
    reduce: Reduce | None = None     # the reduction call binding it (kind REDUCE only)
    reduce_ordinal: int | None = None  # that call's 0-based position among the statement's Reduces


@dataclass(frozen=True)
class DimMap:
    """One dimension of an access: ``expr = sum(coeffs[i] * i) + const``."""

    expr: sympy.Expr
    coeffs: tuple[tuple[str, sympy.Expr], ...]   # only nonzero coefficients, loop order
    const: sympy.Expr
    # spec language 1.1: terms ``coefficient * floor(p / q)`` / ``coefficient * Mod(p, q)``
    # with ``p`` affine in the indices and ``q`` a positive integer: (atom, coefficient) pairs
    atoms: tuple[tuple[sympy.Expr, sympy.Expr], ...] = ()

    def coeff(self, index: str) -> sympy.Expr:
        return dict(self.coeffs).get(index, sympy.Integer(0))

    @property
    def affine(self) -> bool:
        """True when the dimension has no floor-division or modulo term."""
        return not self.atoms

    @property
    def direct_index(self) -> str | None:
        """The index when the expression is exactly one plain index, else None."""
        if self.atoms:
            return None
        if self.const == 0 and len(self.coeffs) == 1 and self.coeffs[0][1] == 1:
            return self.coeffs[0][0]
        return None


@dataclass(frozen=True)
class AccessMap:
    """The affine map of one tensor access: loop-index vector -> tensor coordinates."""

    access: Access
    tensor: str
    shape: tuple[sympy.Expr, ...]
    is_lhs: bool
    columns: tuple[str, ...]         # the statement's loop indices: the matrix columns
    dims: tuple[DimMap, ...]

    @property
    def text(self) -> str:
        return f"{self.tensor}[{', '.join(str(d.expr) for d in self.dims)}]"

    def coeffs(self, dim: int) -> dict[str, sympy.Expr]:
        return dict(self.dims[dim].coeffs)

    def const(self, dim: int) -> sympy.Expr:
        return self.dims[dim].const

    @property
    def matrix(self) -> sympy.ImmutableMatrix:
        """rank x len(columns) coefficient matrix A with coords = A @ loop + offset."""
        return sympy.ImmutableMatrix(
            [[d.coeff(c) for c in self.columns] for d in self.dims]
        ) if self.columns else sympy.ImmutableMatrix.zeros(len(self.dims), 0)

    @property
    def offset(self) -> sympy.ImmutableMatrix:
        return sympy.ImmutableMatrix([[d.const] for d in self.dims])


@dataclass(frozen=True)
class BoundsProof:
    """``0 <= expr <= size - 1`` for one access dimension, for all allowed sizes and indices."""

    access: str                      # access text, e.g. "x[2*o + r]"
    tensor: str
    dim: int
    lower: str                       # the condition proven, as text
    upper: str
    proven: bool
    argument: tuple[str, ...]        # the steps, for ``nkigen explain``
    condition: str = ""              # both at once: "0 <= expr <= size - 1"


@dataclass(frozen=True)
class ExactlyOnceProof:
    statement: int
    target: str
    proven: bool
    argument: str


@dataclass(frozen=True)
class StatementAnalysis:
    statement: Statement
    loop_indices: tuple[LoopIndex, ...]
    lhs: AccessMap
    rhs: tuple[AccessMap, ...]       # right-hand accesses in source order
    bounds: tuple[BoundsProof, ...]
    exactly_once: ExactlyOnceProof

    @property
    def accesses(self) -> tuple[AccessMap, ...]:
        return (self.lhs, *self.rhs)

    def loop(self, name: str) -> LoopIndex:
        for li in self.loop_indices:
            if li.name == name:
                return li
        raise KeyError(name)


class IndexRole(Enum):
    """Placement of an index on the hardware, used by hint checks and default tiles."""

    PARTITION = "partition"      # contraction index of a matmul, or first lhs index element-wise
    STATIONARY = "stationary"    # free index of the matmul's stationary (first) operand
    MOVING = "moving"            # free index of the moving operand (one PSUM bank wide)
    FREE = "free"                # any other free-dimension index
    BATCH = "batch"              # an outer loop taking one value at a time (a batch index of a
                                 # matmul, a second contraction index); default tile 1


@dataclass(frozen=True)
class SizeInfo:
    """A size with its constraints; ``value`` is its definition over free sizes (derived)."""

    name: str
    derived: bool
    multiple_of: int | None
    min: int
    max: int | None
    value: sympy.Expr | None         # as written
    resolved: sympy.Expr | None      # over free sizes only


@dataclass(frozen=True)
class Analysis:
    spec: Spec
    sizes: tuple[SizeInfo, ...]      # declaration order
    derived_order: tuple[str, ...]   # derived sizes in evaluation order
    extents: tuple[tuple[str, sympy.Expr], ...]
    extent_info: tuple[IndexExtent, ...]
    statements: tuple[StatementAnalysis, ...]
    main_statement: int              # position of the main statement (first with summed indices)
    roles: tuple[tuple[str, IndexRole], ...]   # roles of the main statement's loop indices
    target: str
    domain: SizeDomain | None = field(default=None, compare=False)   # for further proofs

    def extent(self, name: str) -> sympy.Expr:
        for n, e in self.extents:
            if n == name:
                return e
        raise KeyError(name)

    def size_info(self, name: str) -> SizeInfo:
        for s in self.sizes:
            if s.name == name:
                return s
        raise KeyError(name)

    def role(self, index: str) -> IndexRole | None:
        return dict(self.roles).get(index)

    @property
    def main(self) -> StatementAnalysis:
        return self.statements[self.main_statement]
