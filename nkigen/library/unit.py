"""Stage: library (one spec). A spec file -> its kernel, goldens and test module, verified.

Input: a spec path, a staging directory and the build configuration. Output: a picklable
:class:`UnitResult` (status, manifest entry, produced files with hashes, diagnostics) and, on
success, the files ``kernels/<name>.py``, ``golden/<name>/<case>.npz`` and
``tests/test_<name>.py`` under the staging directory.

Verification: for every test case, and every case :mod:`nkigen.library.autocase` derives for a
side of a trace-time size branch of the kernel that no test case reaches (recorded ``derived``
in the manifest, beside the kernel's ``branches``), the generated kernel runs in the simulator
(numerics on) on inputs from :mod:`nkigen.testdata`, and its outputs are compared with the
float64 reference within the tolerance (:func:`mismatches`: exact equality, same-signed
infinities included, and NaN where the reference is NaN match; a finite value never matches a
non-finite one); each invalid size assignment must be rejected by the kernel with its message.
Any mismatch fails the spec with a located diagnostic.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shlex
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nkigen
from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.dtypes import DType
from nkigen.hw import DEFAULT_TARGET, FP32_EXACT_INT
from nkigen.library import autocase, bound, shapes
from nkigen.library.stages import Stages

if TYPE_CHECKING:   # numpy (and golden, which needs it) are imported where a spec is built, so
    import numpy as np  # that carrying cached kernels over (a no-op build) does not load them


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
    os_error: str | None = None            # an OS error (disk full...): not the spec's fault


def build_unit(path: str, rel: str, key: str, stage_dir: str, cfg: UnitConfig,
               stages: Stages, guard: tuple[bool, bool] | None = None,
               executor: Any = None) -> UnitResult:
    """Build, verify and write one spec; never raises for a spec or kernel problem.

    ``guard``: :func:`guard_policy` of ``path`` when the caller has already taken it (a remote
    worker cannot: the file is on the driver's machine). ``executor``: None (every case and
    tuning simulation in this process, as a local build does), or an
    :class:`nkigen.library.executor.Executor` on which the spec's tuning simulations and the
    verification of each of its test cases run as separate tasks (:func:`verify_case_task`;
    a Ray worker building a spec fans them out as nested Ray tasks)."""
    t0 = time.perf_counter()
    name = None
    try:
        spec = stages.load_spec(path)
        name = spec.name
        entry, files = _build(spec, Path(path), rel, Path(stage_dir), cfg, stages, executor)
        return UnitResult(rel, key, "built", name, entry, files, (),
                          time.perf_counter() - t0, path)
    except NkigenError as e:
        found = e.diagnostics if name is not None else guard_content(path, e.diagnostics, guard)
        diags = tuple(str(d) if d.loc is not None else f"{path}: {d}" for d in found)
    except OSError as e:   # writing the staged files (disk full, ...): stops the whole build
        where = e.filename if isinstance(e.filename, str) else stage_dir
        what = f"{where}: {e.strerror or e}"
        return UnitResult(rel, key, "failed", name, None, (), (f"{path}: {what}",),
                          time.perf_counter() - t0, path, os_error=what)
    except Exception as e:  # a bug in a stage: report it against the spec, keep building others
        diags = (f"{path}: internal error while building: {_bug_text(e)}",)
    return UnitResult(rel, key, "failed", name, None, (), diags, time.perf_counter() - t0, path)


def _bug_text(e: Exception) -> str:
    """``Type: message at file:line`` of an unexpected exception (a case task's: as it sent it)."""
    if isinstance(e, CaseTaskBug):
        return e.text
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


class CaseTaskBug(Exception):
    """An unexpected exception in a case task, re-raised in the task that builds the spec."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


PREFIX_CHARS = 16   # content of a file that is not a spec shown in a diagnostic, at most


def guard_policy(path: str) -> tuple[bool, bool]:
    """(the spec is a link to a file outside its folder, the file is a YAML mapping)."""
    p = Path(path)
    try:
        outside = p.is_symlink() and Path(os.path.realpath(p)).parent != \
            Path(os.path.realpath(p.parent))
    except OSError:
        outside = True
    if outside:
        return True, False
    import yaml

    try:
        with open(p, "rb") as f:
            is_spec = isinstance(yaml.safe_load(f.read(1 << 20)), dict)
    except (OSError, yaml.YAMLError, ValueError, RecursionError):
        is_spec = False
    return False, is_spec


def guard_content(path: str, diags: tuple[Diagnostic, ...],
                  policy: tuple[bool, bool] | None = None) -> tuple[Diagnostic, ...]:
    """Diagnostics of a spec that failed to load, safe to print: the ``got`` text (which may
    quote the file) is dropped for a symbolic link to a file outside the spec's folder (a link
    to a password file must not leak it), and cut to a short escaped prefix when the file is not
    a YAML mapping at all (not a spec). ``policy``: :func:`guard_policy` of ``path``."""
    outside, is_spec = guard_policy(path) if policy is None else policy
    if outside:
        note = "content not shown: the spec is a link to a file outside its folder"
        return tuple(replace(d, got=note) if d.got is not None else d for d in diags)
    if is_spec:
        return diags
    return tuple(replace(d, got=_prefix(d.got)) if d.got is not None else d for d in diags)


def _prefix(text: str) -> str:
    short = ascii(text[:PREFIX_CHARS])[1:-1]
    return short + ("..." if len(text) > PREFIX_CHARS else "")


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _write(stage: Path, rel: str, data: bytes, files: list[tuple[str, str]]) -> Path:
    p = stage / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    files.append((rel, _sha(data)))
    return p


def _build(spec: Any, path: Path, rel: str, stage: Path, cfg: UnitConfig,
           stages: Stages, executor: Any = None) -> tuple[dict, tuple[tuple[str, str], ...]]:
    from nkigen.library import golden, suite

    target = cfg.target or spec.target or DEFAULT_TARGET
    loc = spec.loc or Loc(str(path))
    all_cases = verified_cases(spec, loc, stages.cases)
    schedule = None
    tuned_at = None
    if stages.tune is not None and spec.schedule.auto:
        # Tune at the largest test case: the sizes the library verifies and reports latency for
        # (the tuner's own default sizes take minutes per contraction).
        tuned_at = max(all_cases, key=lambda c: (_elements(spec, c), sorted(c.items())))
        if executor is None:
            schedule = stages.tune(spec, target, cfg.dialect, tuned_at, cfg.tune_cache)
        else:     # the candidates' simulations as tasks of the executor
            schedule = stages.tune(spec, target, cfg.dialect, tuned_at, cfg.tune_cache,
                                   executor=executor)
    source, schedule_record = stages.generate(spec, target, cfg.dialect, schedule)
    if tuned_at is not None:
        schedule_record = {**schedule_record, "tuned_at": dict(sorted(tuned_at.items()))}
    if stages.lint is not None:
        _lint_stage(spec, loc, source, cfg.dialect, stages.lint)
    files: list[tuple[str, str]] = []
    src_bytes = source.encode()
    kpath = _write(stage, f"kernels/{spec.name}.py", src_bytes, files)
    kernel = stages.sim_load(str(kpath), spec.name)

    order = [s.name for s in spec.sizes]
    kernel_rel = f"kernels/{spec.name}.py"
    # the kernel's trace-time size branches no case reaches get derived cases (autocase)
    cov = autocase.derive(spec, source, cfg.dialect, all_cases)
    declared = len(all_cases)
    fields: list[str | None] = [None] * declared
    for d in cov.derived:
        if d.sizes not in all_cases:
            all_cases.append(d.sizes)
            fields.append(f"tests (case derived for the "
                          f"{autocase.outcome_name(d.branch, d.outcome)} side of "
                          f"{kernel_rel}:{d.branch.line})")
    names = [golden.case_name(free, order) for free in all_cases]
    if executor is None or len(all_cases) <= 1:
        cases = [_verify_case(spec, kernel, free, cname, i, target, loc, stage, files, stages,
                              source, fields[i])
                 for i, (free, cname) in enumerate(zip(all_cases, names))]
    else:
        cases = _verify_cases_as_tasks(executor, spec, source, all_cases, names, target, loc,
                                       stage, files, stages, fields)
    for d in cov.derived:
        c = cases[all_cases.index(d.sizes)]
        c["derived"] = {"at": f"{kernel_rel}:{d.branch.line}", "condition": d.branch.text,
                        "outcome": autocase.outcome_name(d.branch, d.outcome),
                        "reason": d.reason(kernel_rel)}
    slow = _hint_slowdown(spec, all_cases, cases, target, cfg.dialect, stages)
    if slow is not None:    # a hinted kernel far behind the planner's default: a warning
        schedule_record = {**schedule_record, "hint_slowdown": slow}
    invalid = [_check_invalid(spec, kernel, sizes, msg, target, loc, stages)
               for sizes, msg in stages.invalid_cases(spec)]
    invalid = [c for c in invalid if c is not None]

    entry = {
        "name": spec.name,
        "doc": spec.doc,
        **({"bound_note": spec.bound_note} if spec.bound_note else {}),
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
        "branches": autocase.manifest_branches(
            cov, spec, [(c["name"], free) for c, free in zip(cases, all_cases)], kernel_rel),
        "invalid_cases": invalid,
        "status": "verified",
    }
    test_src = suite.render_test(entry).encode()
    _write(stage, f"tests/test_{spec.name}.py", test_src, files)
    return entry, tuple(sorted(files))


def verified_cases(spec: Any, loc: Loc, cases: Any) -> list[dict[str, int]]:
    """The size assignments a build verifies the kernel at, each once (``cases``:
    ``testdata.cases``, which is :func:`nkigen.analysis.cases.spec_cases`, or a fake's); raise
    the refusals that need no data: no case at all, a case whose tensors or tiles are over the
    budgets of :mod:`nkigen.analysis.checktime` (said before anything is allocated, never a
    MemoryError) or whose integer input range is empty."""
    all_cases: list[dict[str, int]] = []
    for c in cases(spec):
        c = {k: int(v) for k, v in c.items()}
        if c not in all_cases:   # a repeated case would write the same golden twice
            all_cases.append(c)
    if not all_cases:
        raise NkigenError(Diagnostic(loc, "tests.cases", "no test case to verify the kernel on",
                                     fix="add tests.cases or constraints that allow one"))
    from nkigen.analysis.checktime import (
        case_input_diagnostics,
        case_memory_diagnostics,
        case_tile_diagnostics,
    )

    given = None if spec.tests.cases else all_cases
    bad = case_memory_diagnostics(spec, given) + case_tile_diagnostics(spec, given) + \
        case_input_diagnostics(spec, given)
    if bad:
        raise NkigenError(bad)
    return all_cases


def check_buildable(spec: Any, target: str | None, dialect: str) -> None:
    """Stage: check. Raise every refusal ``nkigen build`` makes before it draws data, with the
    build's own diagnostics (one code path: :func:`verified_cases`, the generate stage,
    :func:`_lint_stage`): the cases and their budgets, then the kernel planned, rendered and
    linted for ``target`` (None: the spec's own, else the default) and ``dialect``. A spec
    with ``schedule: auto`` is planned with the planner's defaults (tuning simulates: not
    data, but seconds per spec; the tuner keeps only candidates that plan, and falls back
    to the defaults)."""
    from nkigen.analysis.cases import spec_cases
    from nkigen.library import stages as real

    loc = spec.loc or Loc(spec.path or "<spec>")
    verified_cases(spec, loc, spec_cases)
    source, _ = real._generate(spec, target or spec.target or DEFAULT_TARGET, dialect, None)
    _lint_stage(spec, loc, source, dialect, real._lint)


def _hint_slowdown(spec: Any, all_cases: list[dict[str, int]], cases: list[dict], target: str,
                   dialect: str, stages: Stages) -> dict | None:
    """:func:`nkigen.library.hints.slowdown` at the largest case (the one a tuned spec is tuned
    at), from the latency its verification measured; None without hints or an estimator."""
    from nkigen.library import hints

    if stages.estimate is None or not hints.has_hints(spec):
        return None
    i = max(range(len(all_cases)),
            key=lambda k: (_elements(spec, all_cases[k]), sorted(all_cases[k].items())))
    try:
        return hints.slowdown(spec, cases[i], float(cases[i]["latency_us"]),
                              hints.default_estimate(stages, target, dialect, all_cases[i]),
                              target)
    except NkigenError:     # the planner's defaults do not plan: nothing to compare with
        return None


def _lint_stage(spec: Any, loc: Loc, source: str, dialect: str,
                lint: Any) -> None:
    """Stage: lint. A generated kernel with a lint finding fails its spec: one diagnostic at the
    spec, then one per finding located in the generated kernel ``kernels/<name>.py``.
    ``lint``: ``(source, path, dialect) -> findings`` (:attr:`Stages.lint`)."""
    kpath = f"kernels/{spec.name}.py"
    found = lint(source, kpath, dialect)
    if not found:
        return
    head = Diagnostic(loc, "lint", f"the generated {dialect} kernel does not lint clean",
                      got=f"{len(found)} finding{'s' if len(found) != 1 else ''}",
                      fix=f"reproduce with `nkigen gen {loc.path}"
                          f"{' --dialect ' + dialect if dialect != 'nki' else ''} -o k.py && "
                          "nkigen lint k.py`; report it as an nkigen bug")
    raise NkigenError([head] + [
        Diagnostic(Loc(kpath, line, col), f"lint[{rule}]", msg, got=got, fix=fix)
        for line, col, rule, msg, got, fix in found])


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
    import numpy as np

    names = [t.name for t in spec.outputs]
    if isinstance(raw, dict):
        return {n: np.asarray(raw[n]) for n in names}
    if isinstance(raw, (tuple, list)):
        return dict(zip(names, (np.asarray(a) for a in raw)))
    return {names[0]: np.asarray(raw)}


def kernel_args(spec: Any, inputs: dict) -> list[np.ndarray]:
    """Kernel arguments in declaration order, in their storage dtypes."""
    import numpy as np

    return [np.asarray(inputs[t.name]).astype(t.dtype.np) for t in spec.inputs]


def _verify_case(spec, kernel, sizes, cname, i, target, loc, stage, files, stages,
                 source: str = "", field: str | None = None) -> dict:
    import numpy as np

    from nkigen.library import golden
    from nkigen.reference import first_arg_nan, first_integer_overflow
    from nkigen.testdata import STORE_FLIPS, finite_rms, output_atol, temp_sensitivity

    if field is None and i < len(spec.tests.cases):
        loc = spec.loc_of(f"tests.cases[{i}]") or loc
    field = field or f"tests.cases[{i}]"     # a derived case (autocase) names its branch
    try:
        inputs = stages.make_inputs(spec, sizes)
    except (ValueError, OverflowError) as why:  # e.g. integers low > high at this case's sizes
        raise NkigenError(Diagnostic(
            spec.loc_of("tests.inputs") or loc, "tests.inputs",
            f"cannot draw the test inputs of case {cname}", got=f"{type(why).__name__}: {why}",
            fix="give every distribution finite bounds with low <= high at every test case")) \
            from None
    args = kernel_args(spec, inputs)
    try:
        ref = stages.evaluate(spec, inputs, sizes)
    except IndexError as why:   # a gather id outside its table: the test data's problem
        raise NkigenError(Diagnostic(
            _ids_loc(spec, str(why)) or loc, field,
            f"the reference cannot evaluate case {cname}: {why}",
            fix="draw the ids inside the table, e.g. tests.inputs: {ids: {dist: integers, "
                "low: 0, high: \"V - 1\"}} (V: the gathered dimension)")) from None
    over = first_integer_overflow(spec, inputs, sizes)
    if over is not None:
        st = over.statement
        d = spec.tensor(st.target).dtype
        lo, hi = d.value_range
        raise NkigenError(Diagnostic(
            st.loc or loc, f"compute[{st.position}]",
            f"statement {st.position} `{st.text}` gives {st.target} ({d.value}) "
            f"{over.count} of {over.size} values outside [{lo:g}, {hi:g}] in case {cname}; NKI "
            "documents no conversion of an out-of-range value to an integer dtype (SH "
            "nki/api/nki.api.shared.rst, nki 0.3), so kernel and reference cannot be compared",
            got=f"{over.value:g} at {over.index}",
            fix=f"keep the values in range: clamp them in compute (maximum/minimum), draw "
                f"narrower tests.inputs, or declare {st.target} a wider dtype"))
    nan = first_arg_nan(spec, inputs, sizes)
    if nan is not None:
        st = nan.statement
        raise NkigenError(Diagnostic(
            st.loc or loc, f"compute[{st.position}]",
            f"statement {st.position} `{st.text}` takes {nan.op.value} over {nan.index} of "
            f"values holding NaN ({nan.count} of {nan.size}) in case {cname}; NKI documents "
            "max8 / nc_find_index8, which the kernel uses, on ordered values only (SH "
            "nki/api/nki/isa/__init__.py, nki 0.3), so the kernel's index for a row with NaN "
            "is undefined and cannot be compared with the reference's (the first NaN)",
            got="NaN at " + ", ".join(f"{n}={k}" for n, k in nan.at),
            fix="keep the operand NaN-free at the test cases: draw tests.inputs inside the "
                "domains of the functions it applies (e.g. {dist: uniform, low: 0.5, high: 2} "
                "under sqrt or log)"))
    expected = {t.name: np.asarray(ref[t.name], np.float64) for t in spec.outputs}
    for t in spec.outputs:     # spec language 1.1: undeclared NaN/Inf in the reference fail
        e = expected[t.name]
        if not getattr(spec.tests, "nonfinite", False) and not np.isfinite(e).all():
            idx = tuple(int(x) for x in np.argwhere(~np.isfinite(e))[0])
            narrow = ""
            if not t.dtype.is_integer and t.dtype is not DType.float32 and np.isinf(e[idx]):
                # an overflow of the output's own dtype, e.g. a clamp to 448 stored as
                # float8_e4m3 (IEEE-style, largest finite 240: nkigen/dtypes.py) (fuzz9)
                narrow = (f"keep {t.name} within +-{t.dtype.finite_max:g}, the largest finite "
                          f"{t.dtype.value} (a larger value is stored as inf), or declare a "
                          "wider dtype; else ")
            raise NkigenError(Diagnostic(
                loc, field,
                f"the reference output '{t.name}' is not finite in case {cname}",
                got=f"{e[idx]!r} at {idx}",
                fix=narrow + "keep the inputs in the functions' domains (tests.inputs), or "
                    "declare tests.nonfinite: true if NaN/Inf are expected"))
    if spec.tests.rtol is not None and spec.tests.atol is not None:
        rtol, atol = spec.tests.rtol, spec.tests.atol
    else:
        d_rtol, d_atol = stages.tolerance(spec, sizes)
        rtol = spec.tests.rtol if spec.tests.rtol is not None else d_rtol
        atol = spec.tests.atol if spec.tests.atol is not None else d_atol
    # an integer output rounded from a fractional value may flip by one (a declared atol wins)
    per_output = {} if spec.tests.atol is not None else output_atol(spec, inputs, sizes, atol)
    # an integer output of integer arithmetic (no fractional value before rounding) is exact or
    # wrong: the relative default (rtol ~ 1e-6) let 2**25 + 1 -> 2**25 pass (review 6, R1)
    exact = set() if spec.tests.rtol is not None or spec.tests.atol is not None else {
        t.name for t in spec.outputs if t.dtype.is_integer and t.name not in per_output}
    with _generated_kernel_errors(spec, loc, field, cname, target, source):
        result = stages.sim_run(kernel, args, target, numerics=True)
    got = _outputs(spec, result.outputs)
    if spec.tests.atol is None and any(not t.dtype.is_integer for t in spec.temps) and any(
            mismatches(np.asarray(got[t.name]).astype(np.float64), expected[t.name], rtol,
                       per_output.get(t.name, atol))[0].any()
            for t in spec.outputs if np.shape(got[t.name]) == expected[t.name].shape):
        # ill-conditioned data: the outputs move further under the temps' storage flips than
        # the formula assumes; the measured move is the honest atol (testdata.temp_sensitivity)
        moved = temp_sensitivity(spec, sizes, inputs)
        scale = max(finite_rms(expected[t.name]) for t in spec.outputs)
        if moved > scale:
            raise NkigenError(Diagnostic(
                spec.loc_of("tests.inputs") or loc, "tests.inputs",
                f"the test data make case {cname} ill-conditioned: the reference outputs move "
                f"by {moved:.3g} (root-mean-square) when the floating-point temps move by "
                f"{STORE_FLIPS:g} ulps, as a kernel's float32 temps may, more than the outputs' "
                f"own root-mean-square {scale:.3g}, so no tolerance tells a right kernel from a "
                "wrong one", got=f"{moved:.3g} > {scale:.3g}",
                fix="draw tests.inputs the statistics do not cancel on (e.g. a spread that is "
                    "not tiny next to the mean, a variance well above eps), or declare "
                    "tests.tolerance"))
        atol = max(atol, moved)
        per_output = {n: max(v, atol) for n, v in per_output.items()}
    max_abs = 0.0
    for t in spec.outputs:
        g = np.asarray(got[t.name]).astype(np.float64)
        e = expected[t.name]
        if g.shape != e.shape:
            raise NkigenError(Diagnostic(
                loc, f"outputs.{t.name}", f"kernel output has the wrong shape in case {cname}",
                got=f"{g.shape}, reference {e.shape}", fix="report this as an nkigen bug"))
        t_atol = per_output.get(t.name, atol)
        t_rtol = rtol
        if t.name in exact:
            t_rtol = t_atol = 0.0
        bad, err = mismatches(g, e, t_rtol, t_atol)
        finite = err[np.isfinite(err)]
        worst = float(finite.max()) if finite.size else 0.0
        if bad.any():
            idx = tuple(int(x) for x in np.argwhere(bad)[0])
            inexact = _beyond_fp32_exact(spec, inputs)
            if inexact is not None:
                name, value, where = inexact
                raise NkigenError(Diagnostic(
                    spec.loc_of(f"tests.inputs.{name}") or spec.loc_of(f"inputs.{name}") or loc,
                    f"tests.inputs.{name}",
                    f"kernel output '{t.name}' differs from the float64 reference in case "
                    f"{cname} ({int(bad.sum())} of {bad.size} elements, max abs error "
                    f"{worst:.6g}) and int32 input '{name}' holds values beyond "
                    f"+-{FP32_EXACT_INT}, the largest integers float32 holds exactly: the "
                    "engines compute arithmetic, matmul operands and dtype-converting copies "
                    "in float32 (SH nki/api/nki.api.shared.rst 'Supported Math Operators', "
                    "nki/api/nki/isa dma_copy, nki 0.3), so the kernel cannot be exact on a "
                    "Trainium",
                    got=f"{value} at {where}",
                    fix=f"draw tests.inputs.{name} within [-{FP32_EXACT_INT}, "
                        f"{FP32_EXACT_INT}] (e.g. {{dist: integers, low: -{FP32_EXACT_INT}, "
                        f"high: {FP32_EXACT_INT}}}), or declare tests.tolerance wide enough "
                        "for float32 rounding of the inputs"))
            big = _int_result_beyond_fp32_exact(spec, inputs, sizes)
            if big is not None:
                st, value, where = big
                raise NkigenError(Diagnostic(
                    st.loc or loc, f"compute[{st.position}]",
                    f"kernel output '{t.name}' differs from the float64 reference in case "
                    f"{cname} ({int(bad.sum())} of {bad.size} elements, max abs error "
                    f"{worst:.6g}) and statement {st.position} `{st.text}` gives int32 "
                    f"'{st.target}' values beyond +-{FP32_EXACT_INT}, the largest integers "
                    "float32 holds exactly: the engines compute reductions, matmuls and "
                    "arithmetic with a float operand in float32 (SH nki/api/nki.api.shared.rst "
                    "'Supported Math Operators', nki/api/nki/isa tensor_reduce, nki 0.3; only "
                    "GpSimd's two-tile int32 add, multiply, subtract, max and min are native "
                    "integer arithmetic), so the kernel cannot be exact on a Trainium",
                    got=f"{value} at {where}",
                    fix=f"keep the statement's values within [-{FP32_EXACT_INT}, "
                        f"{FP32_EXACT_INT}] (narrower tests.inputs), or declare "
                        "tests.tolerance wide enough for float32 rounding"))
            raise NkigenError(Diagnostic(
                loc, field,
                f"kernel output '{t.name}' differs from the float64 reference in case {cname}: "
                f"{int(bad.sum())} of {bad.size} elements outside atol + rtol*|ref| "
                f"(rtol={t_rtol:g}, atol={t_atol:g}); max abs error {worst:.6g}",
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
        **({"output_atol": {n: float(v) for n, v in sorted(per_output.items())}}
           if per_output else {}),
        **({"output_exact": sorted(exact)} if exact else {}),
        "latency_us": _num(rep.latency_us),
        "hfu": _num(rep.hfu),
        "mbu": _num(rep.mbu),
        "max_abs_error": _num(max_abs),
        "status": "passed",
        **bound.describe(rep, source, spec),
    }


def _beyond_fp32_exact(spec: Any, inputs: dict) -> tuple[str, int, tuple] | None:
    """The first int32 input holding a value of magnitude over :data:`FP32_EXACT_INT`: (name,
    value, index), or None."""
    import numpy as np

    for t in spec.inputs:
        if t.dtype is not DType.int32:
            continue
        a = np.asarray(inputs[t.name], dtype=np.int64)
        over = np.abs(a) > FP32_EXACT_INT
        if over.any():
            idx = tuple(int(x) for x in np.argwhere(over)[0])
            return t.name, int(a[idx]), idx
    return None


def _int_result_beyond_fp32_exact(spec: Any, inputs: dict, sizes: dict
                                  ) -> tuple[Any, int, tuple] | None:
    """The first statement giving an int32 target a value of magnitude over
    :data:`FP32_EXACT_INT` in the reference: (statement, value, index), or None. Inputs within
    2**24 can still sum past it (fuzz17: an int32 row sum of 300 values of +-10**6, reduced on
    VectorE in float32, missed the reference by 1 and was reported as an nkigen bug)."""
    import numpy as np

    from nkigen.reference import evaluate_all

    if not any(spec.tensor(st.target).dtype is DType.int32 for st in spec.statements):
        return None
    values = evaluate_all(spec, inputs, sizes)
    for st in spec.statements:
        if spec.tensor(st.target).dtype is not DType.int32:
            continue
        a = np.asarray(values[st.target], dtype=np.float64)
        over = np.abs(a) > FP32_EXACT_INT
        if over.any():
            idx = tuple(int(x) for x in np.argwhere(over)[0])
            return st, int(a[idx]), idx
    return None


def _ids_loc(spec: Any, why: str) -> Loc | None:
    """Where the spec draws the gather ids that ``why`` (the reference's IndexError) names:
    their ``tests.inputs`` entry, else ``tests.inputs``; None when neither is written (a
    derived case has no line of its own: it was reported at the file's start, fuzz7)."""
    from nkigen.ir import accesses
    ids = sorted({g[1].tensor for st in spec.statements for a in accesses(st.rhs)
                  for g in a.indirect})
    for name in ids:
        if f" from {name} " in why:
            return spec.loc_of(f"tests.inputs.{name}") or spec.loc_of("tests.inputs")
    return None


@contextlib.contextmanager
def _generated_kernel_errors(spec: Any, loc: Loc, field: str, cname: str, target: str = "",
                             source: str = ""):
    """A simulator error in the generated kernel is nkigen's bug, reported at the spec: one
    diagnostic there (case, reproduction), then the simulator's own, its location rewritten to
    the library path ``kernels/<name>.py`` (the staging folder it ran from is gone after the
    build). The reproduction names the kernel's dialect (from its header) and target, which
    ``nkigen gen`` would otherwise take as nki / the spec's (fuzz9: a neuronxcc failure
    reproduced as a working nki kernel)."""
    from nkigen.sim.errors import SimError

    try:
        yield
    except SimError as e:
        kpath = f"kernels/{spec.name}.py"
        own = [replace(d, loc=Loc(kpath, d.loc.line, d.loc.col))
               if d.loc is not None and Path(d.loc.path).name == f"{spec.name}.py" else d
               for d in e.diagnostics]
        head = Diagnostic(loc, field, f"the generated kernel fails in the simulator in case "
                          f"{cname}",
                          fix=f"reproduce with `{_gen_command(loc.path, target, source)}`; "
                              "report it as an nkigen bug, or change the dtypes or schedule of "
                              "the spec")
        raise NkigenError([head, *own]) from None


def _gen_command(path: str, target: str, source: str) -> str:
    """``nkigen gen`` of the kernel that failed: its dialect read from the header line
    ``# dialect: <name> (...)`` the generated module starts with, its target as verified."""
    cmd = f"nkigen gen {shlex.quote(path)} -o k.py"
    m = re.search(r"^# dialect: (\w+)", source[:2000], re.M)
    if m and m.group(1) != "nki":
        cmd += f" --dialect {m.group(1)}"
    return cmd + (f" --target {target}" if target else "")


def verify_case_task(spec: Any, source: str, sizes: dict, cname: str, i: int, target: str,
                     loc: Loc, stages: Stages, field: str | None = None) -> tuple:
    """One test case of a spec as a task of its own (:func:`_verify_case` on the kernel
    ``source``, loaded from a private temporary folder). Returns ``("passed", case entry,
    golden path, golden bytes)``, ``("failed", diagnostics)`` or ``("bug", text)``; never
    raises for a spec or kernel problem."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="nkigen-case-"))
    try:
        kpath = work / "kernels" / f"{spec.name}.py"
        kpath.parent.mkdir()
        kpath.write_bytes(source.encode())
        kernel = stages.sim_load(str(kpath), spec.name)
        files: list[tuple[str, str]] = []
        case = _verify_case(spec, kernel, sizes, cname, i, target, loc, work, files, stages,
                            source, field)
        return ("passed", case, case["golden"], (work / case["golden"]).read_bytes())
    except NkigenError as e:
        return ("failed", e.diagnostics)
    except Exception as e:    # a bug in a stage: reported against the spec by its builder
        return ("bug", _bug_text(e))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verify_cases_as_tasks(executor: Any, spec: Any, source: str, all_cases: list[dict],
                           names: list[str], target: str, loc: Loc, stage: Path,
                           files: list[tuple[str, str]], stages: Stages,
                           fields: list[str | None] | None = None) -> list[dict]:
    """The cases of a spec verified as tasks of ``executor``; the same entries, goldens and
    first error as the loop of a local build: results are taken in case order, and the first
    failing case (the one a local build stops at) is the spec's error, naming the case."""
    from nkigen.library.executor import TaskFailed

    shared = executor.share(spec)
    fields = fields or [None] * len(all_cases)
    calls = [(shared, source, free, cname, i, target, loc, stages, fields[i])
             for i, (free, cname) in enumerate(zip(all_cases, names))]
    got: list[tuple | None] = [None] * len(calls)
    with contextlib.closing(executor.map_unordered(verify_case_task, calls)) as finished:
        for n, r in finished:      # closing: an error here cancels the cases still running
            got[n] = r
            first = next((k for k, g in enumerate(got)
                          if not (isinstance(g, tuple) and g[0] == "passed")), len(got))
            if first == len(got) or (got[first] is not None):
                break        # every case passed, or the first failing one is known
    cases = []
    for i, r in enumerate(got):
        assert r is not None
        if isinstance(r, TaskFailed):
            cloc = (spec.loc_of(f"tests.cases[{i}]") if i < len(spec.tests.cases) and
                    fields[i] is None else None) or loc
            raise NkigenError(Diagnostic(
                cloc, fields[i] or f"tests.cases[{i}]",
                f"verifying case {names[i]} failed in its worker",
                got=r.reason, fix="run again; if it keeps failing, build with the local "
                                  "executor and report the spec"))
        if r[0] == "failed":
            raise NkigenError(r[1])
        if r[0] == "bug":
            raise CaseTaskBug(r[1])
        _, case, grel, data = r
        _write(stage, grel, data, files)
        cases.append(case)
    return cases


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
    import numpy as np

    with np.errstate(invalid="ignore", over="ignore"):
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        err = np.where(same, 0.0, np.abs(got - want))
        close = np.isfinite(got) & np.isfinite(want) & (err <= atol + rtol * np.abs(want))
    return ~(same | close), err


def _check_invalid(spec, kernel, sizes, message, target, loc, stages) -> dict | None:
    """Run the kernel on zero inputs of an invalid size assignment; it must refuse them."""
    import numpy as np

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
