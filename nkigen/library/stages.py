"""Stage: library (wiring). The pipeline functions a library build calls, as one value.

Input: nothing (the real stages are imported lazily from their packages). Output: a frozen
:class:`Stages` of plain module-level functions, so it pickles into worker processes. Tests build
a :class:`Stages` of small fakes to exercise the build machinery on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stages:
    """Every stage the build uses; signatures follow the team's fixed interfaces."""

    load_spec: Callable[[Any], Any]                      # path -> Spec
    generate: Callable[..., tuple[str, dict]]            # (spec, target, dialect, schedule)
    #                                                      -> (source, schedule record)
    tune: Callable[..., Any] | None                      # (spec, target, dialect, sizes, cache_dir
    #                                      [, executor=Executor]) -> Schedule | None
    cases: Callable[[Any], list[dict]]                   # spec -> size assignments
    invalid_cases: Callable[[Any], list[tuple[dict, str]]]
    make_inputs: Callable[..., dict]                     # (spec, sizes, seed=None) -> name -> arr
    evaluate: Callable[..., dict]                        # (spec, inputs, sizes) -> name -> f64 arr
    tolerance: Callable[..., tuple[float, float]]        # (spec, sizes) -> (rtol, atol)
    sim_load: Callable[..., Any]                         # (path, name) -> kernel
    sim_run: Callable[..., Any]                          # (kernel, args, target, numerics=)
    api_version: Callable[[str], str]                    # dialect -> NKI API version
    # lint stage: (source, kernel path, dialect) -> findings as (line, col, rule, message, got,
    # fix); None skips the stage (the fakes of the build tests)
    lint: Callable[[str, str, str], list[tuple]] | None = None
    # (spec file bytes, path to show) -> Spec: how a remote worker, which cannot read the
    # driver's files, loads a spec sent to it; None: it loads ``path`` itself (a shared file
    # system, e.g. a local Ray instance)
    load_spec_bytes: Callable[[bytes, str], Any] | None = None
    # (spec, kernel source, sizes, target) -> modelled latency in us of a cost-only run, or
    # None when it does not run: the default kernel a hinted spec is compared with
    # (nkigen.library.hints); None skips that comparison (the fakes of the build tests)
    estimate: Callable[..., float | None] | None = None


def _api_version(dialect: str) -> str:
    from nkigen import codegen

    v = codegen.API_VERSION
    if isinstance(v, dict):
        return str(v.get(dialect, ""))
    return str(v)


def _generate(spec, target, dialect, schedule) -> tuple[str, dict]:
    """``nkigen.codegen.generate`` spelled out (analyze, plan, render) to keep the plan. The
    analysis raises what ``nkigen check`` rejects (an operand pairing TensorE cannot take, an
    ``argmax`` into an 8-bit tensor too small for its indices): a spec that check rejects
    does not build."""
    from nkigen.analysis import analyze
    from nkigen.codegen import plan_kernel, render
    from nkigen.library.planinfo import schedule_json

    analysis = analyze(spec)
    plan = plan_kernel(spec, analysis, target, schedule, dialect)
    return render(plan, dialect), schedule_json(spec, plan, schedule)


def _tune(spec, target, dialect, sizes, cache_dir=None, executor=None):
    """The tuner's best legal schedule at ``sizes``, or None (the planner's defaults).
    ``executor``: where the candidates' simulations run (None: in this process)."""
    from pathlib import Path

    from nkigen.tune import tune

    best = tune(spec, target, dialect, sizes=sizes,
                cache_dir=Path(cache_dir) if cache_dir else None, executor=executor).best
    return best.schedule if best.legal else None


def _lint(source: str, path: str, dialect: str) -> list[tuple]:
    """Stage: lint. The generated kernel checked against the documented API of its dialect."""
    from nkigen.lint.checker import lint_source
    from nkigen.lint.table import Api, Level

    res = lint_source(source, path, Api(dialect))
    # errors (the compiler rejects it) and deprecated names fail a build; "discouraged" findings
    # (documented constructs the docs advise against, e.g. classic static_range, which the
    # generator uses only where an index is needed at trace time) are left to `nkigen lint`
    return [(f.line, f.col, f.rule, f.message, f.got, f.fix) for f in res.findings
            if f.level is not Level.DISCOURAGED]


def _sim_run(kernel, args, target=None, numerics=True, **kw):
    """Stage: verify. ``nkigen.sim.run`` under the generated profile of the classic forms
    (:mod:`nkigen.sim.classic.forms`): a generated kernel using an undocumented classic form
    fails its spec (located at the kernel line) for every rule switched on there."""
    from nkigen import sim
    from nkigen.sim.classic import forms

    with forms.profile(forms.GENERATED):
        return sim.run(kernel, args, target, numerics=numerics, **kw)


def _estimate(spec, source: str, sizes: dict, target: str) -> float | None:
    """Stage: verify (cost only). The modelled latency of ``source`` at ``sizes``, or None."""
    from nkigen.tune.measure import simulate_source

    res = simulate_source(spec, source, sizes, target)
    return float(res["latency_us"]) if res.get("legal") else None


def _load_spec_bytes(data: bytes, shown: str):
    """``nkigen.frontend.load_spec`` on bytes read by the driver (same checks, same Spec)."""
    from nkigen.frontend.loader import load_document
    from nkigen.frontend.parser import parse_spec
    from nkigen.frontend.yamlpos import MAX_BYTES

    return parse_spec(*load_document(data[:MAX_BYTES + 1], shown))


def _tune_available() -> bool:
    try:
        from nkigen.tune import tune  # noqa: F401
    except ImportError:
        return False
    return True


def real_stages() -> Stages:
    """The real pipeline (imports fail loudly here if a stage has not landed)."""
    # codegen is imported here too so worker processes inherit it instead of importing it
    from nkigen import analysis, codegen, reference, sim, testdata  # noqa: F401
    from nkigen.frontend import load_spec

    return Stages(
        load_spec=load_spec,
        generate=_generate,
        tune=_tune if _tune_available() else None,
        cases=testdata.cases,
        invalid_cases=analysis.invalid_cases,
        make_inputs=testdata.make_inputs,
        evaluate=reference.evaluate,
        tolerance=testdata.tolerance,
        sim_load=sim.load,
        sim_run=_sim_run,
        api_version=_api_version,
        lint=_lint,
        load_spec_bytes=_load_spec_bytes,
        estimate=_estimate,
    )
