"""Lookup over the lint table for one API generation (stage: lint).

Input: an :class:`~nkigen.lint.table.Api`. Output: an :class:`ApiTable` answering "is this name
documented", "what is this function's signature", "is this operator in the ALU table", ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from nkigen.lint.table import ActFunc, AluOp, Api, Name, NameStatus, Signature

# Submodules reachable as attributes of the top-level module (documented import paths):
# SH nki/api/index.rst lists nki, nki.isa, nki.language, nki.collectives; nki.typing is named in
# SH nki/migration/index.rst (0.3). S25 general/nki/api/index.rst lists nki, nki.language,
# nki.isa, nki.compiler; neuronxcc.nki.typing is named in S25 general/nki/api/nki.errors.rst.
SUBMODULES = {
    Api.NKI: ("isa", "language", "collectives", "typing"),
    Api.CLASSIC: ("isa", "language", "compiler", "typing"),
}
# Modules whose attributes are checked against the table (the others are only resolved).
CHECKED = ("nki", "nki.isa", "nki.language")


@dataclass(frozen=True)
class ApiTable:
    api: Api
    signatures: dict[tuple[str, str], Signature] = field(hash=False, compare=False)
    names: dict[tuple[str, str], Name] = field(hash=False, compare=False)
    alu: dict[str, AluOp] = field(hash=False, compare=False)
    act: dict[str, ActFunc] = field(hash=False, compare=False)
    status: dict[tuple[str, str], NameStatus] = field(hash=False, compare=False)

    def documented(self, module: str, name: str) -> bool:
        if module == "nki" and name in SUBMODULES[self.api]:
            return True
        return (module, name) in self.signatures or (module, name) in self.names

    def signature(self, module: str, name: str) -> Signature | None:
        return self.signatures.get((module, name))


@cache
def table(api: Api) -> ApiTable:
    from nkigen.lint import api_classic, api_nki
    from nkigen.lint.rules import EXTRA_NAMES, NAME_STATUS

    mod = api_nki if api is Api.NKI else api_classic
    return ApiTable(
        api,
        {(s.module, s.name): s for s in mod.SIGNATURES},
        {(n.module, n.name): n for n in mod.NAMES + EXTRA_NAMES if n.api is api},
        {o.name: o for o in mod.ALU_OPS},
        {a.name: a for a in mod.ACT_FUNCS},
        {(s.module, s.name): s for s in NAME_STATUS if s.api is api},
    )
