"""The Python API (every stage, behind three names): compile a spec, run it, estimate it, save it.

    k = nkigen.compile("specs/softmax.yaml")          # or YAML text; target=, dialect=, schedule=
    y = k(x)                                          # NumPy in, NumPy out: the NKI simulator
    k.source                                          # the generated NKI kernel (str)
    print(k.report(M=4096, N=8192))                   # cost model: latency, bound, utilisation
    print(k.explain())                                # sizes, maps, proofs, tiling, kernel plan
    k.save("softmax.py")                              # the kernel file, written atomically
    lib = nkigen.load_library("build/library")        # the kernels of a built library, by name

Every user error (a spec problem, a wrong input shape, sizes that break a constraint) raises
:class:`nkigen.NkigenError`, whose ``diagnostics`` are the same located messages the CLI prints.
Latency figures are estimates of the nkigen cost model, not measurements.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import linecache
import os
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.library.bound import busiest, in_order

if TYPE_CHECKING:
    import numpy as np

    from nkigen.analysis import Analysis
    from nkigen.ir import Schedule, Spec

_SCHEDULE_KEYS = ("tiles", "block", "order", "buffers")


def _err(loc: Loc | None, field: str, rule: str, got: object = None,
         fix: str | None = None) -> NkigenError:
    return NkigenError(Diagnostic(loc, field, rule, None if got is None else str(got), fix))


# ---- the cost report -------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelReport:
    """A cost-model estimate of one kernel at one set of sizes (not a measurement).

    ``bound``: the busiest engine ("dma" means the kernel is bound by data movement to and from
    HBM, "tensor" by the matmul engine, else the vector/scalar/gpsimd engine), ``utilisation``:
    each engine's busy fraction of the latency, ``hfu``/``mbu``: TensorE FLOP and HBM bandwidth
    utilisation (see :mod:`nkigen.sim.report`).
    """

    kernel: str
    target: str
    sizes: tuple[tuple[str, int], ...]
    latency_us: float
    bound: str
    utilisation: tuple[tuple[str, float], ...]
    hfu: float
    mbu: float
    hbm_bytes: int
    matmul_flops: int
    note: str = "estimate from the nkigen cost model, not a measurement"

    def __str__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes)
        lines = [f"{self.kernel} on {self.target} at {sizes}",
                 f"latency       {_band(self.latency_us)}",
                 f"bound         {self.bound} (busiest engine)",
                 f"HFU (TensorE) {100 * self.hfu:.2f} %",
                 f"MBU (HBM)     {100 * self.mbu:.2f} %"]
        for eng, u in self.utilisation:
            lines.append(f"{eng:<13} {100 * u:6.2f} % busy  {'#' * round(20 * u)}")
        lines.append(f"({self.note})")
        return "\n".join(lines)


def bound_of(engine_busy: Mapping[str, float]) -> str:
    """The busiest engine (:func:`nkigen.library.bound.busiest`); "none" when all are idle."""
    busy = dict(engine_busy)
    return busiest(busy) if any(v > 0 for v in busy.values()) else "none"


def _kernel_report(name: str, sizes: Mapping[str, int], rep: Any) -> KernelReport:
    busy = dict(rep.engine_busy)
    util = in_order(busy)
    return KernelReport(name, rep.target, tuple(sorted(sizes.items())), float(rep.latency_us),
                        bound_of(busy), util, float(rep.hfu), float(rep.mbu),
                        int(rep.hbm_bytes), int(rep.matmul_flops))


# ---- loading and running generated kernels ---------------------------------------------------

def _load_source(source: str, name: str, filename: str) -> Any:
    """Execute kernel source under the simulator's ``nki`` and return its kernel ``name``."""
    from nkigen.sim import runner

    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)   # located tracebacks
    mod = types.ModuleType(f"_nkigen_api_{name}")
    mod.__file__ = filename
    with runner.installed():
        exec(builtins.compile(source, filename, "exec"), mod.__dict__)
    return getattr(mod, name)


def _as_arrays(kernel_name: str, names: list[str], dtypes: list[Any], args: tuple,
               kwargs: dict, loc: Loc | None) -> list[np.ndarray]:
    import numpy as np

    if len(args) > len(names):
        raise _err(loc, "inputs", f"{kernel_name} takes {len(names)} input(s)", len(args),
                   "pass " + ", ".join(names))
    given = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise _err(loc, "inputs", f"{kernel_name} has no input {k!r}", k,
                       "inputs: " + ", ".join(names))
        if k in given:
            raise _err(loc, "inputs", f"input {k!r} given twice", k, "pass it once")
        given[k] = v
    missing = [n for n in names if n not in given]
    if missing:
        raise _err(loc, "inputs", f"missing input(s) of {kernel_name}", ", ".join(missing),
                   "pass " + ", ".join(names))
    out = []
    for n, d in zip(names, dtypes):
        try:
            a = np.asarray(given[n])
            if np.iscomplexobj(a):     # astype would drop the imaginary part with a warning
                raise TypeError(f"complex values ({a.dtype})")
            out.append(a.astype(d))
        except (TypeError, ValueError) as e:
            raise _err(loc, f"inputs.{n}", "not convertible to a NumPy array of the input's "
                       "dtype", e, "pass a numeric NumPy array") from None
    return out


def _simulate(kernel: Any, args: list, target: str, path: str) -> Any:
    """Run in the simulator (numerics on); a Python error raised by the kernel (its own size
    checks) becomes a located NkigenError."""
    from nkigen.sim import runner
    from nkigen.sim.errors import traceback_loc

    try:
        res = runner.run(kernel, args, target=target, numerics=True, report=False)
    except NkigenError:
        raise
    except (ValueError, AssertionError, TypeError) as e:
        loc = traceback_loc(e.__traceback__, path) or Loc(path)
        raise _err(loc, "kernel", f"{type(e).__name__}: {e}") from None
    out = res.outputs
    return out[0] if len(out) == 1 else tuple(out)


# ---- compile ---------------------------------------------------------------------------------

def largest_case(spec: Spec) -> dict[str, int]:
    """The test case with the most input elements (the one a library build tunes at and
    reports), ties broken by the sizes."""
    import math

    from nkigen.library.shapes import input_shapes
    from nkigen.testdata import cases

    def elements(c: dict[str, int]) -> int:
        try:
            return sum(math.prod(s) for s in input_shapes(spec, c).values())
        except Exception:   # shapes not computable at these sizes: rank it last
            return 0

    return max(({k: int(v) for k, v in c.items()} for c in cases(spec)),
               key=lambda c: (elements(c), sorted(c.items())))


def _int_sizes(sizes: Mapping[str, object], field: str, loc: Loc | None = None) -> dict[str, int]:
    """``sizes`` as ints; a value that is not an integer (bool and float included) is an
    error naming it, never a ValueError from ``int()``."""
    import numbers

    out = {}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise _err(loc, f"{field}.{k}", "a size must be an integer", repr(v),
                       f"pass e.g. {k}=128")
        out[k] = int(v)
    return out


def _read_spec(spec: str | os.PathLike[str]) -> Spec:
    from nkigen.frontend import load_spec, load_spec_text

    if not isinstance(spec, (str, os.PathLike)):
        raise _err(None, "spec", "must be a spec file path or the spec's YAML text",
                   type(spec).__name__, "e.g. nkigen.compile('specs/add.yaml')")
    if isinstance(spec, str) and "\n" in spec:
        return load_spec_text(spec)
    if not os.path.lexists(spec):
        raise _err(Loc(os.fspath(spec)), "spec", "no such spec file", None,
                   "pass a spec file path, or the spec's YAML text")
    return load_spec(os.fspath(spec))


def _schedule(spec: Spec, schedule: object) -> Schedule | None:
    """The schedule asked for: None (the spec's own), a Schedule, or a mapping of hints."""
    from nkigen.ir import Schedule

    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if not isinstance(schedule, Mapping):
        raise _err(None, "schedule", "must be None, 'tune', a mapping of hints or a Schedule",
                   type(schedule).__name__, "e.g. schedule={'tiles': {'m': 128, 'n': 512}}")
    bad = sorted(set(schedule) - set(_SCHEDULE_KEYS))
    if bad:
        raise _err(None, "schedule", "unknown schedule key", ", ".join(bad),
                   "use " + ", ".join(_SCHEDULE_KEYS))
    try:
        return Schedule(auto=False,
                        tiles=tuple(sorted((str(k), int(v)) for k, v in
                                           dict(schedule.get("tiles", {})).items())),
                        order=tuple(str(x) for x in schedule.get("order", ())),
                        block=tuple(sorted((str(k), int(v)) for k, v in
                                           dict(schedule.get("block", {})).items())),
                        buffers=None if schedule.get("buffers") is None
                        else int(schedule["buffers"]))
    except (TypeError, ValueError) as e:
        raise _err(None, "schedule", "hints must map index names to integers", e,
                   "e.g. schedule={'tiles': {'m': 128}, 'block': {'k': 4}}") from None


def compile(spec: str | os.PathLike[str], *, target: str | None = None, dialect: str = "nki",
            schedule: str | Mapping[str, Any] | Schedule | None = None,
            executor: Any = None) -> Kernel:
    """Check, analyse and generate the kernel of ``spec`` (a spec file path, or YAML text).

    ``target``: "trn1" or "trn2" (default: the spec's, else trn2). ``dialect``: "nki" (current
    API) or "neuronxcc" (classic). ``schedule``: None for the spec's own (``auto`` means the
    planner's defaults, untuned), "tune" to let the tuner pick by the cost model at the spec's
    largest test case, or hints such as ``{"tiles": {"m": 128, "n": 512}, "block": {"k": 4}}``
    (checked like the spec's ``schedule:``). ``executor``: where the tuner's simulations run
    (None: this process; "ray" or "ray://HOST:PORT": Ray tasks, see :func:`build`).
    Raises :class:`NkigenError`.
    """
    from nkigen.analysis import analyze
    from nkigen.codegen import plan_kernel, render
    from nkigen.hw import DEFAULT_TARGET, TARGETS

    if target is not None and target not in TARGETS:
        raise _err(None, "target", "unknown target", target, "use " + " or ".join(sorted(TARGETS)))
    if dialect not in ("nki", "neuronxcc"):
        raise _err(None, "dialect", "unknown dialect", dialect, "use nki or neuronxcc")
    sp = _read_spec(spec)
    tgt = target or sp.target or DEFAULT_TARGET
    if isinstance(schedule, str):
        if schedule != "tune":
            raise _err(None, "schedule", "unknown schedule", schedule,
                       "use None, 'tune' or a mapping of hints")
        from nkigen.tune import tune

        at = largest_case(sp)
        best = tune(sp, tgt, dialect, sizes=at, cache_dir=True, executor=executor).best
        sched = best.schedule if best.legal else None
    else:
        sched = _schedule(sp, schedule)
    if sched is not None:
        sp = dataclasses.replace(sp, schedule=sched)   # hint checks run in the analysis
    analysis = analyze(sp, tgt)
    plan = plan_kernel(sp, analysis, tgt, None, dialect)
    return Kernel(sp, analysis, render(plan, dialect), tgt, dialect, plan)


class Kernel:
    """A compiled kernel: its source, a simulator run, its cost estimate, its explanation."""

    def __init__(self, spec: Spec, analysis: Analysis, source: str, target: str, dialect: str,
                 plan: Any):
        self.spec = spec
        self.analysis = analysis
        self.source = source
        self.target = target
        self.dialect = dialect
        self.plan = plan
        self.name: str = spec.name
        self._filename = f"<nkigen kernel {spec.name}>"
        self._fn: Any = None

    @property
    def inputs(self) -> list[str]:
        return [t.name for t in self.spec.inputs]

    @property
    def outputs(self) -> list[str]:
        return [t.name for t in self.spec.outputs]

    def _kernel(self) -> Any:
        if self._fn is None:
            self._fn = _load_source(self.source, self.name, self._filename)
        return self._fn

    def __call__(self, *arrays: Any, **named: Any) -> Any:
        """Run the kernel in the NKI simulator on NumPy arrays (converted to the inputs' storage
        dtypes); returns the output array, or a tuple of them."""
        from nkigen.analysis import bind_sizes

        loc = self.spec.loc
        args = _as_arrays(self.name, self.inputs, [t.dtype.np for t in self.spec.inputs],
                          arrays, named, loc)
        bind_sizes(self.spec, {t.name: a.shape for t, a in zip(self.spec.inputs, args)})
        return _simulate(self._kernel(), args, self.target, self._filename)

    def sizes(self, **sizes: int) -> dict[str, int]:
        """Free sizes checked against the constraints (default: the largest test case)."""
        from nkigen.analysis import check_sizes

        if not sizes:
            return largest_case(self.spec)
        sizes = _int_sizes(sizes, "sizes")
        free = {s.name for s in self.spec.free_sizes}
        missing = sorted(free - set(sizes))
        if missing:
            raise _err(None, "sizes", "every free size is needed", ", ".join(missing),
                       "pass " + ", ".join(f"{n}=..." for n in sorted(free)))
        diags = check_sizes(self.spec, sizes, field="sizes", loc=None)
        if diags:
            raise NkigenError(diags)
        return {k: int(v) for k, v in sizes.items()}

    def report(self, **sizes: int) -> KernelReport:
        """Cost-model estimate at ``sizes`` (every free size; default: the largest test case):
        latency, bound, per-engine utilisation. A cost-only run: no arithmetic, any size."""
        from nkigen.library.shapes import input_shapes
        from nkigen.sim import runner

        at = self.sizes(**sizes)
        shp = input_shapes(self.spec, at)
        args = [runner.placeholder(shp[t.name], t.dtype.np) for t in self.spec.inputs]
        res = runner.run(self._kernel(), args, target=self.target, numerics=False)
        return _kernel_report(self.name, at, res.report)

    def explain(self) -> str:
        """What nkigen understood (as ``nkigen explain``): sizes, maps, proofs, tiling, plan."""
        from nkigen.analysis import format_analysis
        from nkigen.codegen import format_plan

        return (format_analysis(self.analysis) + "\nkernel plan (nkigen.codegen)\n"
                + format_plan(self.plan))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the kernel source to ``path`` atomically; returns the path."""
        from nkigen.commands.gen import write_atomic

        p = Path(path)
        write_atomic(p, self.source)
        return p

    def __repr__(self) -> str:
        return f"<nkigen.Kernel {self.name} ({', '.join(self.inputs)}) on {self.target}>"


# ---- a built library -------------------------------------------------------------------------

class LibraryKernel:
    """One kernel of a built library: callable in the simulator, its source, its manifest entry
    and a cost-model ``report()``."""

    def __init__(self, root: Path, entry: dict):
        self.root = root
        self.entry = entry
        self.name: str = entry["name"]
        self.path = root / entry["kernel"]
        self.target: str = entry["target"]
        self._fn: Any = None

    @property
    def source(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def inputs(self) -> list[str]:
        return [t["name"] for t in self.entry["signature"]["inputs"]]

    @property
    def cases(self) -> list[dict]:
        return list(self.entry["cases"])

    def __call__(self, *arrays: Any, **named: Any) -> Any:
        from nkigen.dtypes import DType

        sig = self.entry["signature"]["inputs"]
        args = _as_arrays(self.name, self.inputs, [DType(t["dtype"]).np for t in sig], arrays,
                          named, Loc(str(self.path)))
        return _simulate(self._loaded(), args, self.target, str(self.path))

    def _loaded(self) -> Any:
        from nkigen.sim import runner

        if self._fn is None:
            self._fn = runner.load(self.path, self.name)
        return self._fn

    def case_sizes(self, **sizes: int) -> dict[str, int]:
        """``sizes`` if they are those of a recorded test case, else every free size checked
        against the manifest's constraints; default: the largest recorded case."""
        from nkigen.library.readme import largest_case

        if not sizes:
            return dict(largest_case(self.entry)["sizes"])
        free = [s for s in self.entry["sizes"] if s.get("value") is None]
        where = Loc(str(self.root / "manifest.json"))
        sizes = _int_sizes(sizes, f"kernels.{self.name}.sizes", where)
        missing = sorted({s["name"] for s in free} - set(sizes))
        unknown = sorted(set(sizes) - {s["name"] for s in free})
        if missing or unknown:
            raise _err(where, f"kernels.{self.name}.sizes", "give every free size, only them",
                       ", ".join(missing + unknown),
                       "pass " + ", ".join(f"{s['name']}=..." for s in free))
        for s in free:
            v = int(sizes[s["name"]])
            lo, hi, m = s.get("min") or 1, s.get("max"), s.get("multiple_of")
            if v < lo or (hi is not None and v > hi) or (m and v % m):
                raise _err(where, f"kernels.{self.name}.sizes.{s['name']}",
                           f"size {s['name']} must be >= {lo}"
                           + (f", <= {hi}" if hi is not None else "")
                           + (f", a multiple of {m}" if m else ""), v, "pass a legal size")
        return {k: int(v) for k, v in sizes.items()}

    def _shapes(self, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        """Input shapes from the manifest's signature (size expressions) at ``sizes``."""
        import sympy

        syms = {s["name"]: sympy.Symbol(s["name"]) for s in self.entry["sizes"]}

        def value(text: str, env: Mapping[str, int]) -> int:
            expr = sympy.sympify(text, locals=syms)   # "N" is a size here, not sympy.N
            return int(expr.subs({syms[k]: v for k, v in env.items() if k in syms}))

        env: dict[str, int] = dict(sizes)
        for s in self.entry["sizes"]:      # derived sizes, in declaration order
            if s.get("value") is not None:
                env[s["name"]] = value(s["value"], env)
        return {t["name"]: tuple(value(d, env) for d in t["shape"])
                for t in self.entry["signature"]["inputs"]}

    def report(self, **sizes: int) -> KernelReport:
        """Cost-model estimate at ``sizes`` (every free size; default: the largest recorded
        test case): latency, bound, per-engine utilisation. A cost-only simulation."""
        at, rep = self.estimate(**sizes)
        return _kernel_report(self.name, at, rep)

    def estimate(self, **sizes: int) -> tuple[dict[str, int], Any]:
        """(the sizes, the simulator's cost :class:`nkigen.sim.report.Report` with its timeline)
        of a cost-only run, as :meth:`report` does; for traces and the HTML report."""
        from nkigen.dtypes import DType
        from nkigen.sim import runner

        at = self.case_sizes(**sizes)
        shp = self._shapes(at)
        args = [runner.placeholder(shp[t["name"]], DType(t["dtype"]).np)
                for t in self.entry["signature"]["inputs"]]
        res = runner.run(self._loaded(), args, target=self.target, numerics=False)
        return at, res.report

    def __repr__(self) -> str:
        return f"<nkigen.LibraryKernel {self.name} ({', '.join(self.inputs)})>"


class Library(Mapping[str, LibraryKernel]):
    """The kernels of a library written by ``nkigen build``, by kernel name."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest
        self._kernels = {e["name"]: LibraryKernel(root, e) for e in manifest["kernels"]}

    def __getitem__(self, name: str) -> LibraryKernel:
        try:
            return self._kernels[name]
        except KeyError:
            raise _err(Loc(str(self.root / "manifest.json")), "kernels",
                       f"no kernel named {name!r} in the library", name,
                       "kernels: " + ", ".join(sorted(self._kernels))) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._kernels)

    def __len__(self) -> int:
        return len(self._kernels)

    def __getattr__(self, name: str) -> LibraryKernel:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __repr__(self) -> str:
        return f"<nkigen.Library {self.root} ({len(self)} kernels)>"


def load_library(out: str | os.PathLike[str]) -> Library:
    """The kernels of the library built in folder ``out`` (``nkigen build ... -o out``)."""
    root = Path(out)
    man = root / "manifest.json"
    try:
        data = json.loads(man.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("kernels"), list):
            raise ValueError("no kernels list")
    except FileNotFoundError:
        raise _err(Loc(str(root)), "library", "no manifest.json: not a library built by nkigen",
                   None, "pass the -o folder of `nkigen build`") from None
    except (OSError, ValueError) as e:
        raise _err(Loc(str(man)), "library", "unreadable manifest", e,
                   "rebuild the library with nkigen build") from None
    import jsonschema

    from nkigen.library import manifest

    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(manifest.schema()).iter_errors(data))
    if err is not None:      # a hand-edited or foreign manifest: no KeyError, no ../ paths
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        msg = " ".join(err.message.split())
        raise _err(Loc(str(man)), f"manifest{where}", "breaks manifest.schema.json",
                   msg if len(msg) <= 200 else msg[:197] + "...",
                   "rebuild the library with nkigen build")
    return Library(root, data)


def build(specs: str | os.PathLike[str] | list[str | os.PathLike[str]],
          out: str | os.PathLike[str], *, target: str | None = None, dialect: str = "nki",
          jobs: int = 1, executor: Any = None, keep_going: bool = False) -> Library:
    """``nkigen build``: spec files or folders -> the verified kernel library in ``out``.

    ``executor``: where the specs are built: None or "local" (a pool of ``jobs`` processes),
    "ray" (the cluster ``RAY_ADDRESS`` names, else a local Ray instance started for the build)
    or "ray://HOST:PORT" (Ray Client); an initialised Ray (``ray.init(...)`` by the caller) is
    used as it is. The library is the same, byte for byte, wherever it was built. Raises
    :class:`NkigenError` with every failed spec's diagnostics (``out`` is then left as it was;
    with ``keep_going`` it holds the library of the other specs, and the error is raised still).
    """
    from nkigen.cli import MAX_JOBS, worker_count
    from nkigen.library.build import BuildOptions
    from nkigen.library.build import build as build_library

    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 0 <= jobs <= MAX_JOBS:
        raise _err(None, "jobs", f"must be an int, 0 (all cores) or 1..{MAX_JOBS}", repr(jobs),
                   f"pass jobs=1 to build one spec at a time, up to {MAX_JOBS} processes")
    paths = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    opts = BuildOptions(tuple(os.fspath(p) for p in paths), os.fspath(out), target=target,
                        dialect=dialect, jobs=worker_count(jobs), keep_going=keep_going,
                        progress=False, executor=executor)
    report = build_library(opts)
    if report.failed:
        # each line is already a located diagnostic (spec file:line:col: ...)
        raise NkigenError([Diagnostic(None, "", line)
                           for r in report.failed for line in r.diagnostics])
    return load_library(out)


__all__ = ["Kernel", "KernelReport", "Library", "LibraryKernel", "build", "compile",
           "load_library"]


def _band(us: float) -> str:
    """A latency with the cost model's calibration band (nkigen.sim.calibration)."""
    from nkigen.sim.calibration import format_latency

    return format_latency(us)
