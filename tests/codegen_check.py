"""Helpers for the codegen tests: generate a spec's kernel, run it in the simulator, compare."""

from __future__ import annotations

import types

import numpy as np

from nkigen.codegen import generate
from nkigen.ir import Spec


def load_source(src: str, name: str):
    import nkigen.sim as sim
    code = compile(src, f"<nkigen {name}>", "exec")
    mod = types.ModuleType(f"_gen_{name}")
    with sim.installed():
        exec(code, mod.__dict__)
    return getattr(mod, name)


def check_case(spec: Spec, sizes: dict[str, int], target: str = "trn2", src: str | None = None,
               schedule=None) -> float:
    """Simulate one case; assert it matches the reference; return the worst error ratio."""
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    src = src if src is not None else generate(spec, target=target, schedule=schedule)
    kernel = load_source(src, spec.name)
    inputs = make_inputs(spec, sizes)
    out = sim.simulate(kernel, target)(*inputs.values())
    if len(spec.outputs) == 1:
        out = (out,)
    return assert_matches_reference(spec, sizes, out, inputs=inputs)


def assert_matches_reference(spec: Spec, sizes: dict[str, int], outputs, inputs=None,
                             ref=None) -> float:
    """Assert simulated ``outputs`` (one per spec output, of the case's make_inputs) match the
    float64 reference within the case's tolerance; return the worst error ratio. The check of
    check_case, for a test that has simulated the case already."""
    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs, tolerance

    if ref is None:
        ref = evaluate(spec, inputs if inputs is not None else make_inputs(spec, sizes), sizes)
    rtol, atol = tolerance(spec, sizes, ref)
    worst = 0.0
    assert len(outputs) == len(spec.outputs), (len(outputs), len(spec.outputs))
    for t, got in zip(spec.outputs, outputs):
        want = ref[t.name]
        got = np.asarray(got, dtype=np.float64)
        assert got.shape == want.shape, (t.name, got.shape, want.shape)
        err = np.abs(got - want) / (atol + rtol * np.abs(want))
        bad = float(np.nanmax(err)) if err.size else 0.0
        assert np.all(np.isfinite(got)), f"{t.name}: non-finite values"
        assert bad <= 1.0, f"{spec.name} {sizes} {t.name}: error {bad:.3g} x tolerance"
        worst = max(worst, bad)
    return worst
