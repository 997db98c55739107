"""Shared state of one planning run: the spec, index extents, fresh names, tensor placement.

Stage: plan (helper). Input: Spec, Analysis (or the spec alone: extents are then derived from
direct index uses and ``ranges``), target name; output: the queries the lowerings ask
(extents, who reads/writes a tensor, which temps stay on chip).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from nkigen.analysis.indices import extents_of  # (the lowerings import it from here too)
from nkigen.codegen.names import Namer, checked
from nkigen.diagnostics import error
from nkigen.hw import Target
from nkigen.ir import Role, Schedule, Spec, Statement, accesses


@dataclass
class Build:
    spec: Spec
    extents: dict[str, sympy.Expr]
    target: Target
    namer: Namer
    schedule: Schedule | None = None
    classic: bool = False      # planning for the neuronxcc dialect (see :meth:`buffers`)
    resident: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    consts: list = field(default_factory=list)      # P.Const of the stage being lowered
    # statement -> the target's index expressions when they are not its lhs indices
    # (codegen/flatmap.py: a rank-1 target written as y[F * q + r]); keyed by the statement
    # itself, not its id(), which a later statement could reuse once this one is freed
    store_at: dict = field(default_factory=dict)

    def const(self, name: str, value: int, why: str, tile_size: str | None = None,
              owners=(), owned_only: bool = False, expr: str | None = None) -> None:
        """Declare a tile size / block factor of the current stage (see ``plan.Const``)."""
        from nkigen.codegen.plan import Const
        c = Const(name, int(value), why, tile_size, tuple(owners), owned_only, expr)
        if c not in self.consts:
            self.consts.append(c)

    def own(self, name: str, *owners: str) -> None:
        """More generated names whose arithmetic uses the declared constant ``name``."""
        import dataclasses
        for i, c in enumerate(self.consts):
            if c.name == name:
                self.consts[i] = dataclasses.replace(c, owners=c.owners + tuple(
                    o for o in owners if o not in c.owners))

    @staticmethod
    def create(spec: Spec, analysis: object | None, target: Target) -> Build:
        taken = {checked(t.name, "tensor") for t in spec.tensors}
        taken |= {checked(s.name, "size") for s in spec.sizes}
        taken |= {checked(p.name, "param") for p in spec.params}
        ext = extents_of(spec, analysis)
        for st in spec.statements:
            for i in st.lhs:
                taken.add(checked(i, "index"))
        taken |= {checked(n, "index") for n in ext}
        taken.add(checked(spec.name, "name"))
        for n in ext:
            if n not in ext:
                raise error(spec.loc, "ranges", "index without an extent", n)
        return Build(spec, ext, target, Namer(taken))

    def buffers(self) -> int:
        """Rotating copies of streamed tiles: the ``buffers`` hint, else 2 (double buffering;
        the loops prefetch one iteration ahead, so more copies add nothing).

        The classic dialect gets 1: its ``nl.affine_range`` / ``nl.sequential_range`` trace a
        body once with a symbolic index, which cannot express a Python-level prefetch (the
        ``if i + 1 < n:`` guard, tiles rebound across iterations); the classic compiler
        pipelines affine loops itself (S25 general/nki/api/nki/language/__init__.py
        affine_range, SDK 2.25)."""
        if self.classic:
            return 1
        n = self.schedule.buffers if self.schedule is not None else None
        return 2 if n is None else int(n)

    def sym(self, name: str) -> sympy.Symbol:
        return sympy.Symbol(name, integer=True, nonnegative=True)

    def is_temp(self, tensor: str) -> bool:
        """Whether ``tensor`` is scratch the kernel may keep on chip and never store: a temp
        of the spec, or a pre-pass view (``view_of``, e.g. codegen/flatten.py's ``y_f``) of
        one. A view of an output is the output's storage and must reach HBM even when a later
        statement of the same pass reads it on chip (fuzz15: flatten's ``mn_f`` of the
        AdamW update was read by ``wn``'s statement and never stored)."""
        t = self.spec.tensor(tensor)
        while t.role is Role.TEMP and t.view_of:
            t = self.spec.tensor(t.view_of)
        return t.role is Role.TEMP

    def readers(self, tensor: str) -> list[int]:
        return [st.position for st in self.spec.statements
                if any(a.tensor == tensor for a in accesses(st.rhs))]

    def last_reader(self, tensor: str) -> int:
        r = self.readers(tensor)
        return max(r) if r else -1

    def writers(self, tensor: str) -> int:
        return sum(1 for st in self.spec.statements if st.target == tensor)

    def written_before(self, st: Statement) -> bool:
        return any(s.target == st.target for s in self.spec.statements[:st.position])
