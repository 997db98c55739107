"""The shipped specs (specs/*.yaml) and their generated kernels, each loaded or generated once
per test process (no test functions here).

Many tests read the kernel of every shipped spec (the classic dialect's loops, masks, views,
index tiles); generating the 48 classic kernels takes ~4 s, so each test regenerating them cost
the suite tens of seconds. A Spec is a frozen dataclass and generation is deterministic (see
test_codegen.py::test_generation_independent_of_hash_seed), so sharing them changes nothing a
test sees. Tests that patch the code generator must call nkigen.codegen.generate themselves.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from nkigen.codegen import generate
from nkigen.frontend import load_spec
from nkigen.ir import Spec

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
SPECS = sorted(SPEC_DIR.glob("*.yaml"))


def _key(path: Path | str) -> str:
    p = Path(path)
    return str((p if p.suffix == ".yaml" else SPEC_DIR / f"{p}.yaml").resolve())


def spec(path: Path | str) -> Spec:
    """The loaded spec of a shipped spec file (a path, or a name in specs/)."""
    return _spec(_key(path))


def source(path: Path | str, dialect: str = "nki", target: str | None = None) -> str:
    """The generated kernel of a shipped spec (a path, or a name in specs/)."""
    return _source(_key(path), dialect, target)


@cache
def _spec(key: str) -> Spec:
    return load_spec(key)


@cache
def _source(key: str, dialect: str, target: str | None) -> str:
    return generate(_spec(key), target=target, dialect=dialect)
