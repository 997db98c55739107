"""Running kernels: ``run`` / ``simulate`` / ``placeholder``, the ``nki.jit`` kernel object with
SPMD grids, ``installed()`` (sys.modules injection of the ``nki`` API) and ``load``.

Stage: simulate. Input: a kernel (plain function or jitted) and NumPy arrays or placeholders.
Output: a :class:`Result` with the outputs, the instruction trace and the cost report.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nkigen import hw
from nkigen.diagnostics import Loc, NkigenError
from nkigen.sim import deps, dt, state
from nkigen.sim.blas import single_threaded
from nkigen.sim.errors import SimError
from nkigen.sim.tensor import SHARED_HBM, Tensor, wrap_input
from nkigen.sim.trace import Instr, Mem


@dataclass(frozen=True)
class Placeholder:
    """Stands for a kernel input (or describes an output) in a cost-only run."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def placeholder(shape, dtype) -> Placeholder:
    return Placeholder(tuple(int(s) for s in shape), dt.as_dtype(dtype))


@dataclass
class Result:
    outputs: tuple
    instrs: list[Instr]
    report: object = None
    target: str = hw.DEFAULT_TARGET
    peak_sbuf_bytes: int = 0       # per partition
    peak_psum_bytes: int = 0       # per partition (bank-rounded)
    warnings: list = field(default_factory=list)   # located warnings (e.g. invalid inputs)


_TARGET_ALIASES = {"trn1": "trn1", "gen2": "trn1", "inf2": "trn1", "trn2": "trn2",
                   "gen3": "trn2"}


def _target_name(name: str | None) -> str:
    if name is None:
        name = os.environ.get("NEURON_PLATFORM_TARGET_OVERRIDE") or hw.DEFAULT_TARGET
    t = _TARGET_ALIASES.get(str(name).lower())
    if t is None:
        raise SimError("unknown target", name, "use trn1 or trn2")
    return t


class Kernel:
    """A ``@nki.jit`` kernel: callable with NumPy arrays (runs in the simulator), indexable with
    an SPMD grid (``kernel[2, 2](...)``), callable from inside another kernel."""

    def __init__(self, fn: Callable, grid: tuple[int, ...] = (), options: dict | None = None):
        self.fn: Callable
        self.grid: tuple[int, ...]
        self.options: dict
        while isinstance(fn, Kernel):
            options = {**fn.options, **(options or {})}
            grid = grid or fn.grid
            fn = fn.fn
        self.fn = fn
        self.grid = grid
        self.options = dict(options or {})
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    @property
    def target(self) -> str | None:
        return self.options.get("platform_target")

    def __getitem__(self, grid) -> Kernel:
        g = grid if isinstance(grid, tuple) else (grid,)
        g = tuple(int(x) for x in g)
        if not g or any(x <= 0 for x in g):
            raise SimError("SPMD grid dims must be positive integers", grid)
        return Kernel(self.fn, g, self.options)

    def __call__(self, *args, **kwargs):
        if state.active() is not None:
            if self.grid:
                raise SimError("calling a gridded kernel from another kernel is not allowed",
                               self.__name__)
            return self.fn(*args, **kwargs)
        out = run(self, args, target=self.target, kwargs=kwargs, report=False).outputs
        return out[0] if len(out) == 1 else out

    def __repr__(self) -> str:
        return f"<nki kernel {self.__name__}{list(self.grid) if self.grid else ''}>"


def jit(fn: Callable | None = None, **options):
    """``nki.jit`` / ``nki.jit(mode=..., platform_target=...)``; accepts an already-jitted
    kernel."""
    if fn is None:
        return lambda f: Kernel(f, options=options)
    return Kernel(fn, options=options)


def simulate(kernel: Callable, target: str | None = None) -> Callable:
    """``nki.simulate(kernel)(*arrays)``: outputs as NumPy arrays (tuple if several)."""
    def call(*args, **kwargs):
        out = run(kernel, args, target=target, kwargs=kwargs, report=False).outputs
        return out[0] if len(out) == 1 else out
    return call


def _is_array(x: object) -> bool:
    return isinstance(x, (np.ndarray, Placeholder))


def run(kernel: Callable, args: Sequence, target: str | None = None, numerics: bool = True,
        kwargs: dict | None = None, report: bool = True) -> Result:
    """Simulate ``kernel`` on ``args`` (NumPy arrays, placeholders or plain Python values).

    ``target`` None means the kernel's ``platform_target``, else $NEURON_PLATFORM_TARGET_OVERRIDE,
    else trn2. With ``numerics=False`` nothing is computed: shapes, dtypes, strictness checks
    and the trace only (outputs are :class:`Placeholder`s). ``report=False`` skips the cost
    model (``simulate`` and direct kernel calls do).
    """
    grid: tuple[int, ...] = ()
    fn = kernel
    if isinstance(kernel, Kernel):
        grid, fn = kernel.grid, kernel.fn
        if target is None:
            target = kernel.target
    tgt = hw.target(_target_name(target))
    if numerics and any(isinstance(a, Placeholder)
                        for a in (*args, *(kwargs or {}).values())):
        raise SimError("placeholder inputs need a cost-only run", fix="run(..., numerics=False)")
    r = state.Run(tgt, numerics)
    names = _param_names(fn, len(args))
    state.push(r)
    try:
        blas = single_threaded() if numerics else contextlib.nullcontext()
        with installed(), np.errstate(all="ignore"), blas:
            targs = [wrap_input(r, a, n) if _is_array(a) else a for a, n in zip(args, names)]
            tkw = {k: wrap_input(r, v, k) if _is_array(v) else v
                   for k, v in (kwargs or {}).items()}
            ret = None
            programs = list(itertools.product(*(range(g) for g in grid))) if grid else [()]
            spmd = None
            if numerics and len(programs) > 1:
                r.epoch += 1
                spmd = deps.LoopState(r.next_id, r.epoch, spmd=True)
                r.affine.append(spmd)
            for n, prog in enumerate(programs):
                r.program = prog
                r.grid = grid
                r.shared_index = 0
                if spmd is not None and n:
                    r.epoch += 1
                    spmd.next_iteration(r.epoch)
                ret = fn(*targs, **tkw)
        outputs = _outputs(ret, numerics)
        _check_mutated_inputs(r, [t for t in targs if isinstance(t, Tensor)]
                              + [t for t in tkw.values() if isinstance(t, Tensor)], ret)
    finally:
        state.pop()
    rep = _report(r.instrs, tgt) if report else None
    return Result(outputs, r.instrs, rep, tgt.name, r.sbuf.peak, r.psum.peak, r.warnings)


def _param_names(fn: Callable, n: int) -> list[str]:
    code = getattr(fn, "__code__", None)
    names = list(code.co_varnames[:code.co_argcount]) if code is not None else []
    return (names + [f"arg{i}" for i in range(len(names), n)])[:n]


def _outputs(ret, numerics: bool) -> tuple:
    if ret is None:
        return ()
    items = ret if isinstance(ret, (tuple, list)) else (ret,)
    out: list = []
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise SimError("kernel outputs must be tensors", f"output {i}: {type(t).__name__}")
        if t.alloc.mem is not Mem.HBM or t.alloc.buffer is not SHARED_HBM:
            raise SimError("kernel outputs must be allocated in nl.shared_hbm",
                           f"output {i} is in {t.alloc.buffer.name}",
                           "allocate with nl.ndarray(shape, dtype, buffer=nl.shared_hbm)")
        if numerics:        # the run is over: a whole tensor's storage can be handed out
            data = t.alloc.data
            whole = data is not None and t.is_whole() and t.alloc.phys is None \
                and t.alloc.parent is None
            out.append(data.reshape(t.shape) if whole and data is not None
                       else np.array(t.np(), copy=True))
        else:
            out.append(Placeholder(t.shape, t.dtype))
    return tuple(out)


def _check_mutated_inputs(r: state.Run, inputs: list[Tensor], ret) -> None:
    """A kernel that returns outputs and also writes one of its inputs must return that input
    too (err_mutable_parameter_not_returned in the NKI docs). A kernel returning nothing uses the
    older output-argument convention (SDK 2.20: outputs passed by reference) and is exempt."""
    if not inputs or ret is None:
        return
    returned = {t.alloc.id for t in (ret if isinstance(ret, (tuple, list)) else (ret,))
                if isinstance(t, Tensor)}
    ids = {t.alloc.id: t for t in inputs if t.alloc.id not in returned}
    for ins in r.instrs:
        for w in ins.writes:
            t = ids.get(w.tensor)
            if t is not None and w.mem is Mem.HBM:
                raise SimError("kernel writes an input it does not return",
                               f"input {t.name!r}", "return the mutated input (and annotate it "
                               "nt.mutable_tensor), or write to a new shared_hbm output",
                               loc=Loc(ins.file, ins.line))


def _report(instrs: list[Instr], tgt: hw.Target):
    try:
        from nkigen.sim import cost  # the cost model (owned by another module)
    except ModuleNotFoundError as e:
        if e.name != "nkigen.sim.cost":
            raise
        return None
    estimate = getattr(cost, "estimate", None)
    return estimate(instrs, tgt) if estimate is not None else None


# ---- nki module injection ------------------------------------------------------------
_MODULES = ("nki", "nki.language", "nki.isa", "nki.isa.constants", "nki.typing")


@contextlib.contextmanager
def installed() -> Iterator[types.ModuleType]:
    """Within the block ``import nki`` (and nki.language / nki.isa / nki.typing) resolve to the
    simulator; the previous sys.modules entries (e.g. a real nki) are restored on exit."""
    from nkigen.sim import classic
    from nkigen.sim import nki as api
    constants = importlib.import_module("nkigen.sim.nki.constants")
    mods = {"nki": api, "nki.language": api.language, "nki.isa": api.isa,
            "nki.isa.constants": constants, "nki.typing": api.typing}
    mods.update(classic.modules())      # neuronxcc.nki...: the classic API layer
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield api
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def load(path: str | os.PathLike, name: str):
    """Execute a kernel file under ``installed()`` and return its attribute ``name``."""
    p = Path(path)
    try:
        src = p.read_text(encoding="utf-8")
    except OSError as e:
        raise _load_error(Loc(str(p)), "cannot read kernel file", e.strerror) from None
    except UnicodeDecodeError as e:
        head = e.object[:e.start]
        line, col = head.count(b"\n") + 1, e.start - head.rfind(b"\n")
        raise _load_error(Loc(str(p), line, col), "kernel file is not UTF-8 text",
                          f"byte 0x{e.object[e.start]:02x} at offset {e.start}",
                          "save the file as UTF-8 Python source") from None
    try:
        code = compile(src, str(p), "exec")
    except SyntaxError as e:
        raise _load_error(Loc(str(p), e.lineno or 0, e.offset or 0), "syntax error",
                           e.msg) from None
    mod = types.ModuleType(f"_nkigen_kernel_{p.stem}")
    mod.__file__ = str(p)
    folder = str(p.resolve().parent)        # like `python file.py`: siblings are importable
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        with installed():
            exec(code, mod.__dict__)
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    if not hasattr(mod, name):
        funcs = sorted(k for k, v in vars(mod).items() if isinstance(v, Kernel) or (
            callable(v) and not k.startswith("_")
            and getattr(v, "__module__", "") == mod.__name__))
        raise _load_error(Loc(str(p)), f"no kernel named {name!r}", None,
                           "available: " + (", ".join(funcs) or "none"))
    return getattr(mod, name)


def _load_error(loc: Loc, rule: str, got: object, fix: str | None = None) -> NkigenError:
    return SimError(rule, got, fix, loc=loc, field="load")
