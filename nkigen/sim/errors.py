"""Simulator diagnostics: every strictness violation is a located :class:`SimError`.

Stage: simulate. The location is the first stack frame outside ``nkigen/sim`` (the kernel source
line that issued the offending call), found with a cheap ``sys._getframe`` walk.
"""

from __future__ import annotations

import os
import sys
from types import FrameType

from nkigen.diagnostics import Diagnostic, Loc, NkigenError

_SIM_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class SimError(NkigenError):
    """A kernel broke a rule the simulator enforces (hardware limit, legality, bounds)."""

    def __init__(self, rule: str, got: object = None, fix: str | None = None,
                 loc: Loc | None = None, field: str = "sim"):
        if loc is None:
            loc = kernel_loc()
        self.rule = rule
        super().__init__(Diagnostic(loc, field, rule, None if got is None else str(got), fix))


def as_int(v, what: str, fix: str | None = None) -> int:
    """A trace-time integer argument (a loop bound, a shape, an nl.arange length): a tile,
    None or a fraction is a located :class:`SimError` naming ``what``, not a Python exception
    inside the simulator nor a silent truncation (Python's own range() refuses them too; a
    value held in a tile is dynamic control flow, S25 general/nki/api/nki.errors.rst
    err_dynamic_control_flow_not_supported)."""
    if isinstance(v, float) and not v.is_integer():
        raise SimError(f"{what} must be an integer", v, fix)
    if isinstance(v, (str, bytes)):
        raise SimError(f"{what} must be an integer", repr(v), fix)
    try:
        return int(v)
    except (TypeError, ValueError):
        raise SimError(f"{what} must be an integer known at trace time", type(v).__name__,
                       fix or "a value held in a tile cannot size a loop or a tile (dynamic "
                       "control flow): compute it in Python from the shapes") from None


class UnsupportedError(SimError):
    """The kernel used an NKI API (or an argument value) the simulator does not implement."""

    def __init__(self, what: str, fix: str | None = None):
        super().__init__(f"{what} is not supported by the nkigen simulator", None, fix,
                         field="unsupported")


def unsupported_stub(qualname: str, fix: str | None = None):
    """A callable standing for a real NKI API the simulator does not implement: importing it
    works (kernels import APIs they use only on some paths), calling it raises."""
    def stub(*args, **kwargs):
        raise UnsupportedError(qualname, fix)
    stub.__name__ = qualname.rsplit(".", 1)[-1]
    stub.__qualname__ = qualname
    return stub


def _outside(filename: str) -> bool:
    return not filename.startswith(_SIM_DIR)


def kernel_frame(depth: int = 1):
    """The innermost frame whose code lives outside nkigen/sim (None if there is none)."""
    f: FrameType | None = sys._getframe(depth)
    while f is not None and not _outside(f.f_code.co_filename):
        f = f.f_back
    return f


def kernel_loc() -> Loc | None:
    f = kernel_frame(2)
    if f is None:
        return None
    return Loc(f.f_code.co_filename, f.f_lineno, _column(f))


def _column(f: FrameType) -> int:
    """1-based column of the expression the frame is executing (0 if unknown)."""
    try:
        pos = list(f.f_code.co_positions())[f.f_lasti // 2]
    except (IndexError, AttributeError):
        return 0
    return (pos[2] + 1) if pos and pos[2] is not None and pos[0] == f.f_lineno else 0


def traceback_loc(tb, prefer: str | None = None) -> Loc | None:
    """Location for a non-Sim exception: the innermost traceback entry in ``prefer`` (the kernel
    file) if any, else the innermost one outside the nkigen package."""
    pkg = os.path.dirname(_SIM_DIR.rstrip(os.sep)) + os.sep
    want = os.path.abspath(prefer) if prefer else None
    best = fallback = None
    while tb is not None:
        fn = tb.tb_frame.f_code.co_filename
        if want is not None and os.path.abspath(fn) == want:
            best = Loc(fn, tb.tb_lineno)
        elif not fn.startswith(pkg):
            fallback = Loc(fn, tb.tb_lineno)
        tb = tb.tb_next
    return best or fallback
