"""The issue-14 rule for the shipped specs (specs/): at its largest test case every kernel uses
its bound resource (engine or DMA, :mod:`nkigen.library.bound`) at least 50 % in the cost
model, or its spec states why not (``bound_note``). Also the rule's plumbing: a stated reason
replaces the build warning, and the field itself is validated."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest

from nkigen import sim
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec
from nkigen.library import bound
from nkigen.library.progress import summary
from nkigen.library.shapes import input_shapes
from nkigen.library.unit import UnitResult
from nkigen.pipeline import generate
from nkigen.testdata import cases

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
SPEC_FILES = sorted(SPEC_DIR.glob("*.yaml"))


def largest(spec) -> dict[str, int]:
    """The case the build table reports (nkigen.library.readme.largest_case: the largest
    product of the sizes; ties by name, the table breaks them by latency)."""
    return max(cases(spec), key=lambda c: (math.prod(c.values()), sorted(c.items())))


def measure(spec) -> tuple[str, float]:
    """(bound resource, utilisation) of the generated nki kernel at the largest case, cost-only
    (the cost model does not look at values)."""
    target = spec.target or "trn2"
    src = generate(spec, target=target, dialect="nki")
    mod = types.ModuleType(f"_bound_{spec.name}")
    with sim.installed():
        exec(compile(src, f"<{spec.name}>", "exec"), mod.__dict__)
    shapes = input_shapes(spec, largest(spec))
    args = [sim.placeholder(shapes[t.name], t.dtype.name) for t in spec.inputs]
    res = sim.run(getattr(mod, spec.name), args, target=target, numerics=False)
    return bound.bound(res.report)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_shipped_spec_uses_its_bound_resource_or_states_why(path):
    spec = load_spec(path)
    name, util = measure(spec)
    if util >= bound.WARN_BELOW:
        return
    assert spec.bound_note.strip(), (
        f"{path.name}: bound by {name} at {bound.pct(util)} at its largest case "
        f"{largest(spec)}; improve the kernel or state the reason in bound_note")


def _case(util: float) -> dict:
    return {"name": "M128", "bound": "dma", "bound_util": util, "latency_us": 1.0,
            "sizes": {"M": 128}}


def test_a_stated_reason_replaces_the_warning_at_the_boundary():
    note = "DMA bound: one pass over x, nothing to reuse"
    assert bound.warning("k", _case(0.4999), note) is None
    assert bound.warning("k", _case(0.4999), "  ") is not None       # blank is no reason
    assert bound.warning("k", _case(0.4999)) is not None
    assert bound.warning("k", _case(0.5)) is None
    assert not bound.under(_case(0.5)) and bound.under(_case(0.4999))


def test_summary_marks_noted_kernels_and_warns_only_for_the_others():
    noted = {"name": "k", "bound_note": "DMA bound", "cases": [_case(0.2)]}
    plain = {"name": "j", "cases": [_case(0.3)]}
    fine = {"name": "i", "bound_note": "unused", "cases": [_case(0.9)]}
    res = [UnitResult(spec=f"{e['name']}.yaml", key=e["name"], name=e["name"], status="built",
                      seconds=0.1, entry=e) for e in (noted, plain, fine)]
    lines = summary(res).splitlines()
    assert any(ln.startswith("k ") and "dma 20.0 % (noted)" in ln for ln in lines)
    assert any(ln.startswith("i ") and "dma 90.0 %" in ln and "noted" not in ln for ln in lines)
    warns = [ln for ln in lines if ln.startswith("warning:")]
    assert len(warns) == 1 and "j is bound" in warns[0]


SPEC = """nkigen: 1
name: k
{note}sizes: {{M: {{}}}}
inputs: {{x: {{shape: [M], dtype: float32}}}}
outputs: {{y: {{shape: [M], dtype: float32}}}}
compute:
  - y[m] = x[m]
"""


def test_bound_note_is_validated(tmp_path):
    p = tmp_path / "k.yaml"
    p.write_text(SPEC.format(note="bound_note: 'DMA bound: one pass'\n"))
    assert load_spec(p).bound_note == "DMA bound: one pass"
    p.write_text(SPEC.format(note=""))
    assert load_spec(p).bound_note == ""
    for bad in ("bound_note: ''\n", "bound_note: [a]\n"):
        p.write_text(SPEC.format(note=bad))
        with pytest.raises(NkigenError) as e:
            load_spec(p)
        assert "bound_note" in str(e.value)
