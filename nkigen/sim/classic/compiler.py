"""``neuronxcc.nki.compiler`` (``ncc``): direct allocation of SBUF/PSUM tensors and the
compiler directives public kernels use.

Stage: simulate (classic API layer). Sources: S25 general/nki/api/nki/compiler/sbuf.py and
psum.py, general/nki/nki_direct_allocation_guide.rst, general/nki/test/test_sbuf_modulo_alloc.py
and test_psum_modulo_alloc.py (SDK 2.25). ``buffer=ncc.sbuf.mod_alloc(...)`` /
``ncc.sbuf.alloc(func)`` / the PSUM variants place each logical block ``(B..., par_dim(P),
F...)`` of a tensor at a physical location; blocks mapped to the same location share bytes
(modulo allocation = multi-buffering), exactly as on hardware. ``auto_alloc()`` is the automatic
allocator. Directives (``multi_buffer``, ``no_reorder``, ``enable_stack_allocator``, ...) only
steer the compiler's schedule and are accepted without effect.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import mul

from nkigen import hw
from nkigen.sim import dt, rules, state
from nkigen.sim.errors import SimError, UnsupportedError
from nkigen.sim.tensor import PSUM, SBUF, _direct
from nkigen.sim.trace import Mem


@dataclass(frozen=True)
class DirectBuffer:
    """What ``buffer=`` receives from ``ncc.sbuf.*`` / ``ncc.psum.*``; ``func`` None means the
    automatic allocator."""

    mem: Mem
    func: Callable | None
    api: str

    def __repr__(self) -> str:
        return self.api


def _linear(shape: tuple[int, ...], idx: tuple[int, ...]) -> int:
    return sum(i * reduce(mul, shape[d + 1:], 1) for d, i in enumerate(idx))


def _modulo(base: int, tiles: tuple[int, ...], scale: int, idx: tuple[int, ...]) -> int:
    # as the documented modulo function (S25 test_sbuf_modulo_alloc.py): indices and tile
    # counts are zipped, so extra num_*_tiles entries are ignored
    shape = tuple(tiles) if tiles else (1,) * len(idx)
    mod = tuple(i % s for i, s in zip(idx, shape))
    return _linear(shape[:len(mod)], mod) * scale + base


def _sbuf_mod(base_addr, base_partition=0, num_par_tiles=(), num_free_tiles=()):
    def func(idx, pdim_size, fdim_size):
        return (_modulo(base_partition, num_par_tiles, pdim_size, idx),
                _modulo(base_addr, num_free_tiles, fdim_size, idx))
    return func


def _psum_mod(base_bank, base_addr=0, base_partition=0, num_bank_tiles=(), num_par_tiles=(),
              num_free_tiles=()):
    def func(idx, pdim_size, fdim_size):
        return (_modulo(base_bank, num_bank_tiles, 1, idx),
                _modulo(base_partition, num_par_tiles, pdim_size, idx),
                _modulo(base_addr, num_free_tiles, fdim_size, idx))
    return func


def _sbuf_alloc(func):
    return DirectBuffer(Mem.SBUF, func, "ncc.sbuf.alloc(...)")


def _sbuf_mod_alloc(*, base_addr, base_partition=0, num_par_tiles=(), num_free_tiles=()):
    if base_partition:
        raise SimError("ncc.sbuf.mod_alloc: base_partition must be 0 in this release",
                       base_partition)
    return DirectBuffer(Mem.SBUF, _sbuf_mod(base_addr, base_partition, tuple(num_par_tiles),
                                            tuple(num_free_tiles)), "ncc.sbuf.mod_alloc(...)")


def _psum_alloc(func):
    return DirectBuffer(Mem.PSUM, func, "ncc.psum.alloc(...)")


def _psum_mod_alloc(*, base_bank, base_addr=0, base_partition=0, num_bank_tiles=(),
                    num_par_tiles=(), num_free_tiles=()):
    return DirectBuffer(Mem.PSUM, _psum_mod(base_bank, base_addr, base_partition,
                                            tuple(num_bank_tiles), tuple(num_par_tiles),
                                            tuple(num_free_tiles)), "ncc.psum.mod_alloc(...)")


def _auto(mem: Mem):
    return lambda: DirectBuffer(mem, None, f"ncc.{mem.value}.auto_alloc()")


sbuf = types.SimpleNamespace(alloc=_sbuf_alloc, mod_alloc=_sbuf_mod_alloc,
                             auto_alloc=_auto(Mem.SBUF))
psum = types.SimpleNamespace(alloc=_psum_alloc, mod_alloc=_psum_mod_alloc,
                             auto_alloc=_auto(Mem.PSUM))


def place(shape: tuple[int, ...], p: int, dtype, buf: DirectBuffer, name: str) -> dict:
    """Physical tiles of a directly allocated tensor: {block index: core tile (P, F...)}."""
    run = state.current()
    func = buf.func
    assert func is not None, "automatic allocation has no placement function"
    d = dt.as_dtype(dtype)
    blocks, pdim, fshape = shape[:p], shape[p], shape[p + 1:]
    fbytes = math.prod(fshape) * d.itemsize
    out = {}
    for idx in itertools.product(*(range(b) for b in blocks)):
        loc = tuple(int(x) for x in func(idx=idx, pdim_size=pdim, fdim_size=fbytes))
        if buf.mem is Mem.SBUF:
            if len(loc) != 2:
                raise SimError("ncc.sbuf.alloc: the allocation function must return "
                               "(start_partition, byte_addr)", loc)
            p0, addr = loc
            cap = run.target.sbuf_bytes_per_partition
            if addr < 0 or addr + fbytes > cap:
                raise SimError("direct SBUF allocation outside the usable bytes per partition",
                               f"block {list(idx)}: bytes [{addr}, {addr + fbytes}) of {cap}",
                               "keep byte_addr + tile bytes within the usable SBUF "
                               "(physical size minus the compiler's reserved bytes)")
            address = (p0, addr)
        else:
            if len(loc) != 3:
                raise SimError("ncc.psum.alloc: the allocation function must return "
                               "(bank_id, start_partition, byte_addr)", loc)
            bank, p0, addr = loc
            if p0 or addr:
                raise SimError("ncc.psum.alloc: start_partition and byte_addr must both be 0 "
                               "in this release", f"block {list(idx)}: {loc}")
            if fbytes > hw.PSUM_BANK_BYTES:
                raise SimError("a directly allocated PSUM tile may not span banks",
                               f"{fbytes} B per partition > {hw.PSUM_BANK_BYTES}",
                               "use tiles of at most 2 KiB per partition")
            if not 0 <= bank < hw.PSUM_BANKS:
                raise SimError("PSUM bank id out of range", f"block {list(idx)}: bank {bank}",
                               f"use banks 0..{hw.PSUM_BANKS - 1}")
            address = (p0, bank * hw.PSUM_BANK_BYTES)
        if not rules.legal_start(p0, pdim):
            raise SimError("direct allocation breaks the start-partition rule",
                           f"block {list(idx)}: {pdim} partitions at partition {p0}",
                           "start tiles of > 64 partitions at 0, of > 32 at 0/64, else at a "
                           "multiple of 32")
        out[idx] = _direct(run, (pdim,) + fshape, d, SBUF if buf.mem is Mem.SBUF else PSUM,
                           name, address)
    return out


# ---- directives (accepted; they only steer the compiler's schedule) --------------------------
def _passthrough(func=None, **_kw):
    return func if func is not None else (lambda f: f)


enable_stack_allocator = _passthrough
force_auto_alloc = _passthrough
skip_middle_end_transformations = _passthrough


def multi_buffer(factor: int = 2):
    """Loop directive ``directives=ncc.multi_buffer(n)``: a scheduling hint."""
    return ("multi_buffer", int(factor))


@contextlib.contextmanager
def no_reorder():
    yield


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"neuronxcc.nki.compiler.{name}")
