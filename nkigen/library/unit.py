"""Stage: library (one spec). A spec file -> its kernel, goldens and test module, verified.

Input: a spec path, a staging directory and the build configuration. Output: a picklable
:class:`UnitResult` (status, manifest entry, produced files with hashes, diagnostics) and, on
success, the files ``kernels/<name>.py``, ``golden/<name>/<case>.npz`` and
``tests/test_<name>.py`` under the staging directory.

Verification: for every test case the generated kernel runs in the simulator (numerics on) on
inputs from :mod:`nkigen.testdata`, and its outputs are compared with the float64 reference
within the tolerance (:func:`mismatches`: exact equality, same-signed infinities included,
and NaN where the reference is NaN match; a finite value never matches a non-finite one); each
invalid size assignment must be rejected by the kernel with its message. Any mismatch fails the
spec with a located diagnostic.
"""

from __future__ import annotations

import hashlib
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import nkigen
from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.hw import DEFAULT_TARGET
from nkigen.library import bound, golden, shapes
from nkigen.library.stages import Stages


@dataclass(frozen=True)
class UnitConfig:
    target: str | None        # --target; None: the spec's own or the default
    dialect: str
    version: str = nkigen.__version__
    tune_cache: str | None = None   # the library's tuning cache folder (shipped as OUT/tune)


@dataclass(frozen=True)
class UnitResult:
    """What building one spec produced; ``files`` are relative to the staging directory."""

    spec: str                              # spec path as recorded in the library
    key: str
    status: str                            # "built" | "cached" | "failed"
    name: str | None = None
    entry: dict | None = None              # manifest entry of the kernel
    files: tuple[tuple[str, str], ...] = ()
    diagnostics: tuple[str, ...] = ()
    seconds: float = 0.0
    loc_path: str = ""                     # spec path as given, for messages


def build_unit(path: str, rel: str, key: str, stage_dir: str, cfg: UnitConfig,
               stages: Stages) -> UnitResult:
    """Build, verify and write one spec; never raises for a spec or kernel problem."""
    t0 = time.perf_counter()
    name = None
    try:
        spec = stages.load_spec(path)
        name = spec.name
        entry, files = _build(spec, Path(path), rel, Path(stage_dir), cfg, stages)
        return UnitResult(rel, key, "built", name, entry, files, (),
                          time.perf_counter() - t0, path)
    except NkigenError as e:
        diags = tuple(str(d) if d.loc is not None else f"{path}: {d}" for d in e.diagnostics)
    except Exception as e:  # a bug in a stage: report it against the spec, keep building others
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        diags = (f"{path}: internal error while building: {type(e).__name__}: {e}{where}",)
    return UnitResult(rel, key, "failed", name, None, (), diags, time.perf_counter() - t0, path)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _write(stage: Path, rel: str, data: bytes, files: list[tuple[str, str]]) -> Path:
    p = stage / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    files.append((rel, _sha(data)))
    return p


def _build(spec: Any, path: Path, rel: str, stage: Path, cfg: UnitConfig,
           stages: Stages) -> tuple[dict, tuple[tuple[str, str], ...]]:
    from nkigen.library import suite

    target = cfg.target or spec.target or DEFAULT_TARGET
    loc = spec.loc or Loc(str(path))
    all_cases: list[dict[str, int]] = []
    for c in stages.cases(spec):
        c = {k: int(v) for k, v in c.items()}
        if c not in all_cases:   # a repeated case would write the same golden twice
            all_cases.append(c)
    if not all_cases:
        raise NkigenError(Diagnostic(loc, "tests.cases", "no test case to verify the kernel on",
                                     fix="add tests.cases or constraints that allow one"))
    schedule = None
    tuned_at = None
    if stages.tune is not None and spec.schedule.auto:
        # Tune at the largest test case: the sizes the library verifies and reports latency for
        # (the tuner's own default sizes take minutes per contraction).
        tuned_at = max(all_cases, key=lambda c: (_elements(spec, c), sorted(c.items())))
        schedule = stages.tune(spec, target, cfg.dialect, tuned_at, cfg.tune_cache)
    source, schedule_record = stages.generate(spec, target, cfg.dialect, schedule)
    if tuned_at is not None:
        schedule_record = {**schedule_record, "tuned_at": dict(sorted(tuned_at.items()))}
    files: list[tuple[str, str]] = []
    src_bytes = source.encode()
    kpath = _write(stage, f"kernels/{spec.name}.py", src_bytes, files)
    kernel = stages.sim_load(str(kpath), spec.name)

    order = [s.name for s in spec.sizes]
    cases = []
    for i, free in enumerate(all_cases):
        cname = golden.case_name(free, order)
        cases.append(_verify_case(spec, kernel, free, cname, i, target, loc, stage, files, stages,
                                   source))
    invalid = [_check_invalid(spec, kernel, sizes, msg, target, loc, stages)
               for sizes, msg in stages.invalid_cases(spec)]
    invalid = [c for c in invalid if c is not None]

    entry = {
        "name": spec.name,
        "doc": spec.doc,
        "spec": rel,
        "spec_sha256": spec.sha256 or _sha(path.read_bytes()),
        "source_sha256": _sha(src_bytes),
        "kernel": f"kernels/{spec.name}.py",
        "target": target,
        "dialect": cfg.dialect,
        "nki_api_version": stages.api_version(cfg.dialect),
        "signature": {
            "inputs": [_tensor(t) for t in spec.inputs],
            "outputs": [_tensor(t) for t in spec.outputs],
        },
        "sizes": [_size(s) for s in spec.sizes],
        "params": {p.name: p.value for p in spec.params},
        "schedule": schedule_record,
        "cases": cases,
        "invalid_cases": invalid,
        "status": "verified",
    }
    test_src = suite.render_test(entry).encode()
    _write(stage, f"tests/test_{spec.name}.py", test_src, files)
    return entry, tuple(sorted(files))


def _elements(spec: Any, sizes: dict) -> int:
    """Total input elements of a case (0 if its shapes cannot be computed)."""
    try:
        return sum(math.prod(s) for s in shapes.input_shapes(spec, sizes).values())
    except Exception:
        return 0


def _tensor(t: Any) -> dict:
    return {"name": t.name, "shape": [str(d) for d in t.shape], "dtype": t.dtype.value}


def _size(s: Any) -> dict:
    return {"name": s.name, "multiple_of": s.multiple_of, "min": s.min, "max": s.max,
            "value": None if s.value is None else str(s.value)}


def _num(x: Any) -> float:
    """A float rounded to 6 significant digits, so manifests stay short and stable."""
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else x


def _outputs(spec: Any, raw: Any) -> dict[str, np.ndarray]:
    names = [t.name for t in spec.outputs]
    if isinstance(raw, dict):
        return {n: np.asarray(raw[n]) for n in names}
    if isinstance(raw, (tuple, list)):
        return dict(zip(names, (np.asarray(a) for a in raw)))
    return {names[0]: np.asarray(raw)}


def kernel_args(spec: Any, inputs: dict) -> list[np.ndarray]:
    """Kernel arguments in declaration order, in their storage dtypes."""
    return [np.asarray(inputs[t.name]).astype(t.dtype.np) for t in spec.inputs]


def _verify_case(spec, kernel, sizes, cname, i, target, loc, stage, files, stages,
                 source: str = "") -> dict:
    if i < len(spec.tests.cases):
        loc = spec.loc_of(f"tests.cases[{i}]") or loc
    inputs = stages.make_inputs(spec, sizes)
    args = kernel_args(spec, inputs)
    expected = {t.name: np.asarray(stages.evaluate(spec, inputs, sizes)[t.name], np.float64)
                for t in spec.outputs}
    if spec.tests.rtol is not None and spec.tests.atol is not None:
        rtol, atol = spec.tests.rtol, spec.tests.atol
    else:
        d_rtol, d_atol = stages.tolerance(spec, sizes)
        rtol = spec.tests.rtol if spec.tests.rtol is not None else d_rtol
        atol = spec.tests.atol if spec.tests.atol is not None else d_atol
    result = stages.sim_run(kernel, args, target, numerics=True)
    got = _outputs(spec, result.outputs)
    max_abs = 0.0
    for t in spec.outputs:
        g = np.asarray(got[t.name]).astype(np.float64)
        e = expected[t.name]
        if g.shape != e.shape:
            raise NkigenError(Diagnostic(
                loc, f"outputs.{t.name}", f"kernel output has the wrong shape in case {cname}",
                got=f"{g.shape}, reference {e.shape}", fix="report this as an nkigen bug"))
        bad, err = mismatches(g, e, rtol, atol)
        finite = err[np.isfinite(err)]
        worst = float(finite.max()) if finite.size else 0.0
        if bad.any():
            idx = tuple(int(x) for x in np.argwhere(bad)[0])
            raise NkigenError(Diagnostic(
                loc, f"tests.cases[{i}]",
                f"kernel output '{t.name}' differs from the float64 reference in case {cname}: "
                f"{int(bad.sum())} of {bad.size} elements outside atol + rtol*|ref| "
                f"(rtol={rtol:g}, atol={atol:g}); max abs error {worst:.6g}",
                got=f"{g[idx]!r} at {idx}, reference {e[idx]!r}",
                fix="report the kernel to nkigen, or widen tests.tolerance if the math allows"))
        max_abs = max(max_abs, worst)
    data = golden.npz_bytes(golden.golden_arrays(
        {t.name: a for t, a in zip(spec.inputs, args)}, expected))
    grel = f"golden/{spec.name}/{cname}.npz"
    _write(stage, grel, data, files)
    rep = result.report
    return {
        "name": cname,
        "sizes": dict(sorted(sizes.items())),
        "golden": grel,
        "rtol": float(rtol),
        "atol": float(atol),
        "latency_us": _num(rep.latency_us),
        "hfu": _num(rep.hfu),
        "mbu": _num(rep.mbu),
        "max_abs_error": _num(max_abs),
        "status": "passed",
        **bound.describe(rep, source, spec),
    }


def mismatches(got: np.ndarray, want: np.ndarray, rtol: float,
               atol: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the elements of ``got`` that do not match ``want``, their abs errors).

    An element matches when it equals the reference exactly (an infinity of the same sign
    included), when both are NaN (the reference is NaN there too: the kernel computed the same
    undefined value), or when both are finite and ``|got - want| <= atol + rtol * |want|``. A
    finite value never matches an infinite one (``rtol * inf`` would accept anything), and NaN
    matches only NaN. The errors are 0 at exact matches, else ``|got - want|`` (inf or NaN where
    a side is not finite). No floating-point warnings.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        err = np.where(same, 0.0, np.abs(got - want))
        close = np.isfinite(got) & np.isfinite(want) & (err <= atol + rtol * np.abs(want))
    return ~(same | close), err


def _check_invalid(spec, kernel, sizes, message, target, loc, stages) -> dict | None:
    """Run the kernel on zero inputs of an invalid size assignment; it must refuse them."""
    try:
        shp = shapes.input_shapes(spec, sizes)
    except Exception:
        return None   # sizes whose shapes cannot be computed cannot be passed to the kernel
    if any(d < 0 for s in shp.values() for d in s):
        return None   # such inputs cannot even be built
    args = [np.zeros(shp[t.name], dtype=t.dtype.np) for t in spec.inputs]
    label = ", ".join(f"{k}={v}" for k, v in sorted(sizes.items()))
    try:
        stages.sim_run(kernel, args, target, numerics=False)
    except Exception as e:
        if message not in str(e):
            raise NkigenError(Diagnostic(
                loc, "sizes", f"kernel rejected invalid sizes {label} with the wrong message",
                got=f"{str(e)[:300]!r}, expected it to contain {message!r}",
                fix="report this as an nkigen bug")) from None
        return {"sizes": dict(sorted((k, int(v)) for k, v in sizes.items())), "message": message,
                "shapes": {k: list(v) for k, v in shp.items()}}
    raise NkigenError(Diagnostic(
        loc, "sizes", f"kernel accepted invalid sizes {label}",
        got="no error", fix=f"the kernel must reject them with {message!r}; report this bug"))
