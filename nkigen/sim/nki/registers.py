"""Virtual registers and dynamic loops of the current API.

Stage: simulate (nki API layer). Docs: SH nki/api/nki/isa/__init__.py ``VirtualRegister``,
``register_alloc`` / ``register_move`` / ``register_load`` / ``register_store``; SH
nki/api/nki/language/__init__.py ``dynamic_range``, ``fori_loop``, ``while_loop`` (nki 0.3,
fori/while NKI 0.6). On hardware the engine sequencers branch on register values; the
simulator runs eagerly, so a register simply holds the integer it was given or loaded and a
dynamic loop runs its iterations in order (like ``sequential_range``). A register used before it
holds a value, or loaded from a tensor that was never written (the uninitialised sentinel), is
an error. A cost-only run has no values: reading a register loaded from memory there raises
UnsupportedError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from nkigen.sim import dt, loops, state
from nkigen.sim.emit import write
from nkigen.sim.errors import SimError, UnsupportedError
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Mem

_UNSET = object()
_UNKNOWN = object()         # loaded from memory in a cost-only run


class VirtualRegister:
    """``nisa.VirtualRegister``: a 32-bit engine-sequencer register holding an integer."""

    def __init__(self, value=_UNSET):
        self._value = value

    def get(self, what: str) -> int:
        v = self._value
        if v is _UNSET:
            raise SimError(f"{what}: the register is read before it holds a value",
                           fix="initialise it: nisa.register_alloc(x), register_move or "
                           "register_load")
        if v is _UNKNOWN:
            raise UnsupportedError(f"{what} on a register loaded from memory in a cost-only run",
                                   "run with numerics to follow dynamic control flow")
        return int(v)                                   # type: ignore[call-overload]

    def __bool__(self) -> bool:         # ``while reg:`` (SH VirtualRegister, parser frontend)
        return self.get("while reg") != 0

    def __repr__(self) -> str:
        v = self._value
        return "VirtualRegister(unset)" if v is _UNSET else f"VirtualRegister({v})"


def value_of(x, what: str) -> int:
    """An int, or the value of a register."""
    if isinstance(x, VirtualRegister):
        return x.get(what)
    if isinstance(x, (bool, float)) or not isinstance(x, (int, np.integer)):
        raise SimError(f"{what}: expected an integer or a VirtualRegister", repr(x))
    return int(x)


def _int32(v: int, what: str) -> int:
    if not -(1 << 31) <= v < (1 << 32):
        raise SimError(f"{what}: a register holds 32 bits", v)
    return v


def register_alloc(x=None) -> VirtualRegister:
    if x is None:
        return VirtualRegister()
    return VirtualRegister(_int32(value_of(x, "register_alloc"), "register_alloc"))


def _reg(r, api: str) -> VirtualRegister:
    if not isinstance(r, VirtualRegister):
        raise SimError(f"{api}: dst must be a VirtualRegister (nisa.register_alloc())", repr(r))
    return r


def register_move(dst, src) -> None:
    _reg(dst, "register_move")._value = _int32(value_of(src, "register_move"), "register_move")


def _one_element(t, api: str, what: str) -> Tensor:
    if not isinstance(t, Tensor) or t.alloc.mem is Mem.PSUM:
        raise SimError(f"{api}: {what} must be an HBM or SBUF tensor", repr(t))
    if t.size != 1:
        raise SimError(f"{api}: {what} holds exactly one element (shape [1] or [1, 1])",
                       list(t.shape))
    if t.dtype.itemsize > 4:
        raise SimError(f"{api}: a register holds up to 32 bits", dt.name(t.dtype))
    return t


def register_load(dst, src) -> None:
    r = _reg(dst, "register_load")
    t = _one_element(src, "register_load", "src")
    if not state.current().numerics:
        r._value = _UNKNOWN
        return
    if not dt.is_int(t.dtype):
        raise UnsupportedError(f"register_load of a {dt.name(t.dtype)} tensor",
                               "load an integer tensor")
    v = int(t.np().reshape(-1)[0])
    if v == dt.fill_value(t.dtype):
        raise SimError("register_load: the tensor was never written (uninitialised value)",
                       f"{v} in {t!r}", "write the value before loading it")
    r._value = v


def register_store(dst, src) -> None:
    t = _one_element(dst, "register_store", "dst")
    v = _reg(src, "register_store")
    if state.current().numerics:
        write(t, np.array([v.get("register_store")], dtype=np.int64))


def dynamic_range(start, stop=None, step=1) -> Iterator[VirtualRegister]:
    """``nl.dynamic_range``: bounds may be registers, the step is a positive integer; the
    induction variable is a VirtualRegister (SH release notes NKI 0.5)."""
    if isinstance(step, VirtualRegister) or not isinstance(step, (int, np.integer)) or step < 1:
        raise SimError("dynamic_range: step must be a compile-time positive integer", repr(step))
    if stop is None:
        start, stop = 0, start
    a, b = value_of(start, "dynamic_range"), value_of(stop, "dynamic_range")
    for i in loops.sequential_range(a, b, int(step)):
        yield VirtualRegister(i)


def fori_loop(lower, upper, body_fun: Callable, step=1) -> None:
    """``nl.fori_loop``: ``body_fun(i)`` for i in [lower, upper) by step, i a register passed by
    value (SH nki/api/nki/language fori_loop, NKI 0.6)."""
    for i in dynamic_range(lower, upper, step):
        body_fun(i)


def while_loop(init, body_fun: Callable) -> None:
    """``nl.while_loop``: while the condition register is nonzero, ``r = body_fun(r)`` (SH
    nki/api/nki/language while_loop, NKI 0.6)."""
    r = init
    if not isinstance(r, VirtualRegister):
        raise SimError("while_loop: init must be a VirtualRegister", repr(r))
    for _ in loops.sequential_range(0, 1 << 62):
        if r.get("while_loop") == 0:
            return
        nxt = body_fun(VirtualRegister(r.get("while_loop")))
        if not isinstance(nxt, VirtualRegister):
            raise SimError("while_loop: the body returns the next condition register",
                           repr(nxt))
        r = nxt
