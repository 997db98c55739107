"""Running kernels: ``run`` / ``simulate`` / ``placeholder``, the ``nki.jit`` kernel object with
SPMD grids, ``installed()`` (sys.modules injection of the ``nki`` API) and ``load``.

Stage: simulate. Input: a kernel (plain function or jitted) and NumPy arrays or placeholders.
Output: a :class:`Result` with the outputs, the instruction trace and the cost report.
"""

from __future__ import annotations

import contextlib
import gc
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
from nkigen.sim import batch, deps, dt, mode, state
from nkigen.sim.blas import single_threaded
from nkigen.sim.errors import SimError
from nkigen.sim.tensor import HBM, SHARED_HBM, Tensor, wrap_input
from nkigen.sim.trace import Instr, Mem, Trace


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
    instrs: Sequence[Instr]        # a trace.Trace (compact; Instr made on access) or a list
    report: object = None
    target: str = hw.DEFAULT_TARGET
    peak_sbuf_bytes: int = 0       # per partition
    peak_psum_bytes: int = 0       # per partition (bank-rounded)
    warnings: list = field(default_factory=list)   # located warnings (e.g. invalid inputs)


_TARGET_ALIASES = {"trn1": "trn1", "gen2": "trn1", "inf2": "trn1", "trn2": "trn2",
                   "gen3": "trn2"}


def _target_name(name: str | None) -> str:
    env = "NEURON_PLATFORM_TARGET_OVERRIDE"
    if name is None and os.environ.get(env):
        name = os.environ[env]
        if str(name).lower() not in _TARGET_ALIASES:    # not the kernel's error: the variable's
            raise SimError("unknown target", repr(name), f"set {env} to trn1 or trn2, or unset it",
                           loc=Loc("<environment>"), field=env)
    t = _TARGET_ALIASES.get(str(name or hw.DEFAULT_TARGET).lower())
    if t is None:
        raise SimError("unknown target", name, "use trn1 or trn2")
    return t


class Kernel:
    """A ``@nki.jit`` kernel: callable with NumPy arrays (runs in the simulator), indexable with
    an SPMD grid (``kernel[2, 2](...)``), callable from inside another kernel."""

    classic_api = False

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

    def with_schedule(self, edges) -> Kernel:
        """``kernel.with_schedule([(name, name | [names]), ...])``: extra dependency edges
        between named instructions, each pair "the first depends on the second" (SH
        nki/guides/how-to-scheduling-apis.rst, nki 0.5+). The simulator executes instructions
        in program order, so the edges never change a result; their form is checked and the
        returned kernel runs like this one."""
        try:
            pairs = list(edges)
        except TypeError:
            pairs = None
        if pairs is None or not all(
                isinstance(e, (tuple, list)) and len(e) == 2 and isinstance(e[0], str) and (
                    isinstance(e[1], str) or (isinstance(e[1], (tuple, list))
                                              and all(isinstance(n, str) for n in e[1])))
                for e in pairs):
            raise SimError("with_schedule takes a list of (name, name or list of names) pairs",
                           repr(edges), "e.g. kernel.with_schedule([('plus1', 'recip')])")
        return Kernel(self.fn, self.grid, {**self.options, "schedule": tuple(
            (a, (b,) if isinstance(b, str) else tuple(b)) for a, b in pairs)})

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
    if "platform_target" in options:
        raise SimError("nki.jit(platform_target=...) is an error in NKI 0.3",
                       repr(options["platform_target"]),
                       "set NEURON_PLATFORM_TARGET_OVERRIDE (or pass target= to "
                       "nkigen.sim.run/simulate)")
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

    Python's cyclic garbage collector is paused for the run: a simulation creates millions of
    short-lived objects and keeps its whole trace alive, so the collector's repeated full
    passes found nothing to free and took a quarter of a cost-only run. Reference counting
    still frees every tile when its last reference dies (SBUF accounting is unchanged); only
    garbage in reference cycles waits until the run ends.
    """
    from nkigen.sim import spmd
    gc_on = gc.isenabled()
    gc.disable()
    try:
        try:
            return _run(kernel, args, target, numerics, kwargs, report)
        except spmd.Restart:        # a core_barrier / sendrecv between programs: interleave
            return _run(kernel, args, target, numerics, kwargs, report, interleave=True)
    finally:
        if gc_on:
            gc.enable()


def _run(kernel: Callable, args: Sequence, target: str | None, numerics: bool,
         kwargs: dict | None, report: bool, interleave: bool = False) -> Result:
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
    classic = _is_classic(kernel, fn)
    if not classic:
        _check_current_call(fn, args, kwargs or {})
    mode.configure()
    r = state.Run(tgt, numerics)
    r.classic = classic
    user = _user_fn(fn)
    r.kernel_code = getattr(user, "__code__", None)
    r.nested_lines = _nested_lines(user) if classic else frozenset()
    names = _param_names(fn, len(args))
    state.push(r)
    try:
        blas = single_threaded() if numerics else contextlib.nullcontext()
        with installed(), np.errstate(all="ignore"), blas, batch.scope(numerics, mode.FAST):
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
            r.grid = grid
            if interleave and len(programs) > 1:
                from nkigen.sim.spmd import Interleaved
                ret = Interleaved(r, programs, spmd).run_all(fn, targs, tkw)
            for n, prog in enumerate(() if interleave and len(programs) > 1 else programs):
                r.program = prog
                r.shared_index = 0
                if spmd is not None and n:
                    r.epoch += 1
                    spmd.next_iteration(r.epoch)
                ret = fn(*targs, **tkw)
        outputs = _outputs(ret, numerics, classic, r.kernel_code)
        if classic:
            _check_mutated_inputs(r, user, names, targs, tkw, ret)
    finally:
        state.pop()
    if r.sbuf.spilled:
        from nkigen.sim import spill
        r.instrs = Trace(spill.plan(r.instrs, tgt.sbuf_bytes_per_partition))
    rep = _report(r.instrs, tgt) if report else None
    return Result(outputs, r.instrs, rep, tgt.name, r.sbuf.peak, r.psum.peak, r.warnings)


def _param_names(fn: Callable, n: int) -> list[str]:
    code = getattr(_user_fn(fn), "__code__", None)
    names = list(code.co_varnames[:code.co_argcount]) if code is not None else []
    return (names + [f"arg{i}" for i in range(len(names), n)])[:n]


def _return_loc(code: types.CodeType | None) -> Loc | None:
    """The kernel's last ``return`` line (the kernel has returned when its outputs are
    checked, so no frame of it is left to locate an error at)."""
    if code is None:
        return None
    import dis

    lines = [i.positions.lineno for i in dis.get_instructions(code)
             if i.opname in ("RETURN_VALUE", "RETURN_CONST") and i.positions is not None
             and i.positions.lineno is not None]
    return Loc(code.co_filename, lines[-1] if lines else code.co_firstlineno)


def _outputs(ret, numerics: bool, classic: bool = False,
             code: types.CodeType | None = None) -> tuple:
    """The returned tensors as arrays. Outputs live in ``nl.shared_hbm`` (SH nki/migration
    "Output tensors must use nl.shared_hbm", nki 0.3); the classic API also accepts ``nl.hbm``
    (S25 getting_started / nki.language.hbm, SDK 2.25). An error is located at the kernel's
    return line."""
    if ret is None:
        return ()
    items = ret if isinstance(ret, (tuple, list)) else (ret,)
    out: list = []
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise SimError("kernel outputs must be tensors", f"output {i}: {type(t).__name__}",
                           loc=_return_loc(code))
        ok = t.alloc.buffer is SHARED_HBM or (classic and t.alloc.buffer is HBM)
        if not ok:
            raise SimError("kernel outputs must be allocated in nl.shared_hbm"
                           + (" or nl.hbm" if classic else ""),
                           f"output {i} is in {t.alloc.buffer.name}",
                           "allocate with nl.ndarray(shape, dtype, buffer=nl.shared_hbm)",
                           loc=_return_loc(code))
        if numerics:        # the run is over: a whole tensor's storage can be handed out
            if t.alloc.unfilled:
                t.alloc.fill()
            data = t.alloc.data
            whole = data is not None and t.is_whole() and t.alloc.phys is None \
                and t.alloc.parent is None
            out.append(data.reshape(t.shape) if whole and data is not None
                       else np.array(t.np(), copy=True))
        else:
            out.append(Placeholder(t.shape, t.dtype))
    return tuple(out)


def _user_fn(fn: Callable) -> Callable:
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def _is_classic(kernel: Callable, fn: Callable) -> bool:
    """A classic (``neuronxcc.nki``) kernel: a ClassicKernel, or a plain function that uses the
    classic modules (the globals it names, else its module's) and not the current ones."""
    if getattr(kernel, "classic_api", False):
        return True
    if isinstance(kernel, Kernel):
        return False
    user = _user_fn(fn)
    g = getattr(user, "__globals__", {})
    code = getattr(user, "__code__", None)
    used = [g[n] for n in (code.co_names if code is not None else ()) if n in g]
    mods = [v for v in used if isinstance(v, types.ModuleType)] or \
        [v for v in list(g.values()) if isinstance(v, types.ModuleType)]
    names = [getattr(v, "__name__", "") for v in mods]
    if any(n.startswith("nkigen.sim.nki") for n in names):
        return False                    # uses the current API's modules
    return any(n.startswith("nkigen.sim.classic") for n in names)


def _check_current_call(fn: Callable, args: Sequence, kwargs: dict) -> None:
    """NKI 0.3 argument rules (SH nki/migration "Language restrictions", nki 0.3): no ``list``
    kernel arguments (use tuples) and no keyword-only ``*`` separator in the signature."""
    for i, a in enumerate((*args, *kwargs.values())):
        if isinstance(a, list):
            name = (list(kwargs)[i - len(args)] if i >= len(args) else f"argument {i}")
            raise SimError("NKI 0.3 kernels do not take list arguments", name,
                           "pass a tuple instead")
    user = _user_fn(fn)
    code = getattr(user, "__code__", None)
    line = _identity_compare_line(user)
    if line and code is not None:
        raise SimError("NKI 0.3 kernels may not use `is` / `is not`", "identity comparison",
                       "compare with == / != instead", loc=Loc(code.co_filename, line))
    if code is not None and code.co_kwonlyargcount:
        raise SimError("NKI 0.3 kernel signatures may not use the keyword-only separator '*'",
                       ", ".join(code.co_varnames[code.co_argcount:
                                                  code.co_argcount + code.co_kwonlyargcount]),
                       "move the parameters with defaults to the end, without '*'",
                       loc=Loc(code.co_filename, code.co_firstlineno))


_NESTED: dict = {}
_IS_LINE: dict = {}


def _source_tree(fn: Callable):
    """(AST of ``fn``, line offset to the file) or (None, 0) when the source is unavailable."""
    import ast
    import inspect
    import textwrap
    code = fn.__code__
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None, 0
    top = tree.body[0] if tree.body else None
    if not isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef):
        return None, 0
    # the source starts at co_firstlineno, the first decorator line (the def line is later)
    return top, code.co_firstlineno - 1


def _identity_compare_line(fn: Callable) -> int:
    """First line of an ``is`` / ``is not`` comparison in the kernel function (0 if none);
    NKI 0.3 rejects them (SH nki/migration "Replace is / is not with == / !=")."""
    import ast
    code = getattr(fn, "__code__", None)
    if code is None:
        return 0
    got = _IS_LINE.get(code)
    if got is None:
        top, base = _source_tree(fn)
        got = 0
        if top is not None:
            for node in ast.walk(top):
                if isinstance(node, ast.Compare) and any(
                        isinstance(o, ast.Is | ast.IsNot) for o in node.ops):
                    got = node.lineno + base
                    break
        if len(_IS_LINE) > 1024:
            _IS_LINE.clear()
        _IS_LINE[code] = got
    return got


def _nested_lines(fn: Callable) -> frozenset:
    """Lines of ``fn`` inside a Python for/while body (for the shared_hbm top-level rule);
    empty when the source is not available. ``if`` bodies are not included: a trace-time
    ``if`` on a Python value is resolved before compilation (the public flash_fwd reference
    kernel creates an output under ``if config.training``)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return frozenset()
    got = _NESTED.get(code)
    if got is not None:
        return got
    import ast
    lines: set[int] = set()
    top, base = _source_tree(fn)
    if top is not None:
        for node in ast.walk(top):
            if isinstance(node, ast.For | ast.While):
                for st in (*node.body, *node.orelse):
                    end = st.end_lineno or st.lineno
                    lines.update(range(st.lineno + base, end + base + 1))
    if len(_NESTED) > 1024:
        _NESTED.clear()
    got = _NESTED[code] = frozenset(lines)
    return got


def _check_mutated_inputs(r: state.Run, fn: Callable, names: list[str], targs: list,
                          tkw: dict, ret) -> None:
    """Classic parameters are immutable unless annotated ``nt.mutable_tensor``
    (err_cannot_update_immutable_parameter), and a mutable parameter the kernel writes must be
    returned (err_mutable_parameter_not_returned); S25 general/nki/api/nki.errors.rst. A kernel
    returning nothing uses the older output-argument convention (outputs passed by reference,
    S25 nki.errors err_tensor_output_not_written_to) and is exempt."""
    if ret is None:
        return
    params = [(n, t) for n, t in zip(names, targs) if isinstance(t, Tensor)]
    params += [(k, t) for k, t in tkw.items() if isinstance(t, Tensor)]
    if not params:
        return
    returned = {t.alloc.id for t in (ret if isinstance(ret, (tuple, list)) else (ret,))
                if isinstance(t, Tensor)}
    ids = {t.alloc.id: (n, t) for n, t in params}
    ann = getattr(fn, "__annotations__", {}) or {}
    for e in r.instrs.entries:          # compact entries (no Instr made) or Instr
        writes, file, line = (e[3], e[4], e[1]) if e.__class__ is tuple else \
            (e.writes, e.file, e.line)
        for w in writes:
            hit = ids.get(w.tensor)
            if hit is None or w.mem is not Mem.HBM:
                continue
            name, t = hit
            a = ann.get(name)
            mutable = a is not None and "mutable_tensor" in (
                a if isinstance(a, str) else getattr(a, "__name__", repr(a)))
            if not mutable:
                raise SimError("err_cannot_update_immutable_parameter: kernel parameters are "
                               "immutable unless annotated nt.mutable_tensor",
                               f"parameter {name!r}", "annotate it `name: nt.mutable_tensor` "
                               "and return it, or write to a new nl.shared_hbm output",
                               loc=Loc(file, line))
            if t.alloc.id not in returned:
                raise SimError("err_mutable_parameter_not_returned: a mutable parameter the "
                               "kernel writes must be returned", f"parameter {name!r}",
                               "add it to the kernel's return values",
                               loc=Loc(file, line))


def _report(instrs: Sequence[Instr], tgt: hw.Target):
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
            "nki.isa.constants": constants, "nki.typing": api.typing,
            "nki.collectives": api.collectives}
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
        src = p.read_text(encoding="utf-8-sig")     # a UTF-8 BOM is valid Python source
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
    mod = types.ModuleType(_module_name(p))
    mod.__file__ = str(p)
    folder = str(p.resolve().parent)        # like `python file.py`: siblings are importable
    package, root = _package_of(p)
    if package:                             # a module of a package: relative imports work
        mod = types.ModuleType(f"{package}.{p.stem}")
        mod.__file__, mod.__package__ = str(p), package
        folder = root
    sys.modules[mod.__name__] = mod     # as an import would: @dataclass looks its module up
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


def _package_of(p: Path) -> tuple[str, str]:
    """(dotted package, folder holding the top package) when the file's folder has an
    ``__init__.py`` (or is a namespace folder inside a package); else ("", "")."""
    parts: list[str] = []
    d = p.resolve().parent
    while d.name.isidentifier() and ((d / "__init__.py").is_file()
                                     or (d.parent / "__init__.py").is_file()):
        parts.insert(0, d.name)
        d = d.parent
    return ".".join(parts), str(d)


def _module_name(p: Path) -> str:
    import hashlib
    stem = "".join(c if c.isalnum() else "_" for c in p.stem)
    tag = hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:8]
    return f"_nkigen_kernel_{stem}_{tag}"


def _load_error(loc: Loc, rule: str, got: object, fix: str | None = None) -> NkigenError:
    return SimError(rule, got, fix, loc=loc, field="load")
