"""argmax / argmin (spec language 1.1) and max / min reductions on extreme values: generated
kernels run in the simulator on chosen inputs (not the build's normal draws) and must return
exactly what the float64 reference returns.

The reference is NumPy's: ``argmax`` / ``argmin`` give the first index of the extreme value
(spec-language.md "Version 1.1 additions"), so a row of all ``-inf`` has argmax 0, a row of all
``+inf`` argmin 0, and ``max`` of a row of all ``-inf`` is ``-inf``. Rows shorter than 8 are
padded for VectorE ``max8`` / ``nc_find_index8`` (8..16384 elements per partition, SH
nki/api/nki/isa/__init__.py max8, nki 0.3): the pad must lose every tie, so it is ``-inf``, never
a finite stand-in such as ``-FLT_MAX`` (which beats a row of ``-inf`` and makes the kernel return
an index past the row). Rows holding NaN are not covered: the NKI docs leave max8 /
nc_find_index8 on NaN undefined, and the build refuses such test data (tested below).
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import load_source  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.reference import evaluate  # noqa: E402

ARG = """\
nkigen: 1
name: k
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: 3000}}
inputs:
  x: {{shape: [M, N], dtype: {dt}}}
outputs:
  y: {{shape: [M], dtype: int32}}
compute:
  - y[m] = {fn}({body}, n)
"""

NP_DT = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}
INF = np.inf


def _rows(n: int, dt: str, big: float | None = None) -> np.ndarray:
    """Rows of length n that trip a finite pad or a wrong tie rule (first index wins), then
    filler rows of small integers (many ties) to reach 130 rows (a ragged second partition
    tile: 128 + 2), with the hardest rows repeated in that last tile. ``big`` is the largest
    finite value used (default: the dtype's own)."""
    big = float(ml_dtypes.finfo(NP_DT[dt]).max) if big is None else big
    rng = np.random.default_rng(n)

    def row(*head: float, fill: float) -> np.ndarray:
        r = np.full(n, fill)
        r[:min(n, len(head))] = head[:n]
        return r

    special = [
        row(fill=-INF), row(fill=INF),                      # all -inf / all +inf
        row(fill=-big), row(fill=big),                      # all at the finite extremes
        row(-INF, fill=-INF) if n < 2 else row(*[-INF] * (n - 1), INF, fill=-INF),  # +inf last
        row(*[-INF] * (n - 1), -big, fill=-INF),            # one finite value after -inf
        row(INF, -INF, fill=-INF), row(-INF, INF, fill=INF),  # mixes
        row(3.0, -INF, 3.0, INF, INF, -INF, 3.0, fill=-INF),
        row(fill=2.0), row(1.0, 2.0, 2.0, 1.0, fill=1.0),   # ties: the first one wins
        row(-2.0, -1.0, -1.0, -2.0, fill=-2.0),
    ]
    filler = rng.integers(-2, 3, size=(130 - 2 * len(special), n)).astype(np.float64)
    x = np.vstack(special + [filler] + special[::-1])[:130]
    x[-2:] = [special[0], special[1]]                      # all -inf / all +inf in the last tile
    return x.astype(NP_DT[dt])


def _check(text: str, dialect: str, target: str, x: np.ndarray, out: str = "y") -> None:
    import nkigen.sim as sim
    spec = load_spec_text(text)
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    m, n = x.shape
    want = evaluate(spec, {"x": x}, {"M": m, "N": n})[out]
    got = np.asarray(sim.simulate(kernel, target)(x), dtype=np.float64)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{dialect} {target} N={n}: rows {bad[:6].tolist()} got "
                           f"{got[bad[:6]].tolist()}, want {want[bad[:6]].tolist()} "
                           f"(x rows: {x[bad[:2]].astype(np.float32).tolist()})")


@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("dt", ["float32", "bfloat16"])
@pytest.mark.parametrize("fn", ["argmax", "argmin"])
def test_arg_reduction_of_extreme_rows_matches_the_reference(fn, dt, dialect, target):
    """n = 1 and 7 (padded: the last padded width), 8 (the first unpadded one), 9, 40 and 1000
    (past the pad) with 130 rows (a ragged partition tile)."""
    text = ARG.format(dt=dt, fn=fn, body="x[m, n]")
    for n in (1, 7, 8, 9, 40, 1000):
        _check(text, dialect, target, _rows(n, dt))


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_argmax_of_a_computed_row_padded_in_place_matches_the_reference(dialect):
    """The computed fp32 row padded in place (no copy): x * 2 - 1 keeps every infinity (the
    finite values stay small: 2 * FLT_MAX is finite only in the float64 reference)."""
    text = ARG.format(dt="float32", fn="argmax", body="x[m, n] * 2.0 - 1.0")
    for n in (1, 7, 8):
        _check(text, dialect, "trn2", _rows(n, "float32", big=1e30))


RED = """\
nkigen: 1
name: k
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: 100000}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M], dtype: float32}}
compute:
  - y[m] = {fn}(x[m, n], n)
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("fn", ["max", "min"])
def test_streamed_max_and_min_of_infinite_rows_stay_infinite(fn, dialect):
    """Rows too long for one tile (N up to 100000) are reduced in REDUCE_CHUNK pieces into an
    accumulator that starts at the identity: -inf for max, +inf for min (a finite start such as
    -FLT_MAX is returned for a row of all -inf). N = 1 and 2049 (one chunk, then a second
    chunk of one element)."""
    from nkigen.codegen.tilexpr import REDUCE_CHUNK
    src = generate(load_spec_text(RED.format(fn=fn)), dialect=dialect)
    assert "REDUCE_CHUNK" in src                          # the streamed (accumulator) form
    text = RED.format(fn=fn)
    for n in (1, REDUCE_CHUNK + 1):
        x = np.zeros((130, n), np.float32)
        x[0], x[1] = -INF, INF                            # all -inf / all +inf
        x[2, :] = -INF
        x[2, -1] = INF                                    # the extreme in the last chunk
        x[3, :] = INF
        x[3, -1] = -INF
        x[4:, :] = np.random.default_rng(n).normal(size=(126, n))
        x[-2], x[-1] = -INF, INF                          # the ragged partition tile
        _check(text, dialect, "trn2", x)


# ---- NaN: undefined for max8 / nc_find_index8, so the build refuses it -----------------------

NAN_SPEC = """\
nkigen: 1
name: nanarg
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1, max: 64}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M], dtype: int32}}
  s: {{shape: [M], dtype: float32}}
compute:
  - y[m] = {fn}({body}, n)
  - s[m] = sum(x[m, n], n)
tests:
  cases:
    - {{M: 130, N: 5}}
  inputs:
    x: {{dist: uniform, low: {low}, high: 1.0}}
"""


def test_first_arg_nan_finds_nan_in_the_operand_only():
    """NaN in the argmax/argmin operand is found (the first one, and how many); infinities are
    not NaN, and NaN an operand never sees (masked by a where, or summed by another statement)
    is not reported."""
    from nkigen.reference import first_arg_nan

    x = np.zeros((3, 4), np.float32)
    x[1, 2] = x[2, 0] = np.nan
    sizes = {"M": 3, "N": 4}
    for fn in ("argmax", "argmin"):
        spec = load_spec_text(NAN_SPEC.format(fn=fn, body="x[m, n]", low=0.0))
        hit = first_arg_nan(spec, {"x": x}, sizes)
        assert hit is not None and hit.op.value == fn and hit.index == "n"
        assert hit.at == (("m", 1), ("n", 2)) and (hit.count, hit.size) == (2, 12)
        assert first_arg_nan(spec, {"x": np.where(np.isnan(x), -np.inf, x)}, sizes) is None
    masked = load_spec_text(NAN_SPEC.format(fn="argmax", body="where(x[m, n] > 0.0, x[m, n], "
                                            "0.0)", low=0.0))
    assert first_arg_nan(masked, {"x": x}, sizes) is None


@pytest.mark.parametrize("low, ok", [(0.0, True), (-1.0, False)])
def test_build_rejects_test_data_with_nan_under_argmax(tmp_path, capsys, low, ok):
    """sqrt of uniform [low, 1]: from 0 the operand is NaN-free and the kernel builds and
    verifies; below 0 the operand holds NaN and the build names the statement, the rule and the
    fix (was a kernel/reference mismatch: the reference picks the first NaN, the simulator's
    max8 skipped NaN)."""
    from cli_helpers import run

    spec = tmp_path / "nanarg.yaml"
    spec.write_text(NAN_SPEC.format(fn="argmax", body="sqrt(x[m, n])", low=low))
    code, out, err = run(capsys, "build", str(spec), "-o", str(tmp_path / "lib"))
    if ok:
        assert code == 0 and "1 built" in out, out + err
        return
    assert code != 0
    text = out + err
    assert "nanarg.yaml:12:" in text and "compute[0]" in text
    assert "holding NaN" in text and "max8 / nc_find_index8" in text and "NaN at m=" in text
    assert "Traceback" not in text


def test_simulator_warns_on_nan_in_max8_and_find_index8_data():
    """The simulator runs max8 / nc_find_index8 on NaN (a hand-written kernel may) but says the
    result is a guess, located at the kernel line; infinities alone give no warning."""
    import nkigen.sim as sim
    import nkigen.sim.nki.isa as nisa
    import nkigen.sim.nki.language as nl

    def k(x):
        t = nl.load(x)
        top = nl.ndarray((4, 8), dtype=nl.float32)
        nisa.max8(top, t)
        idx = nl.ndarray((4, 8), dtype=nl.uint32)
        nisa.nc_find_index8(idx, t, top)
        out = nl.ndarray((4, 8), dtype=nl.uint32, buffer=nl.shared_hbm)
        nl.store(out, value=idx)
        return out

    x = np.full((4, 8), -np.inf, np.float32)
    x[1] = np.inf
    assert sim.run(k, [x]).warnings == []
    x[2, 3] = np.nan
    got = sim.run(k, [x]).warnings
    assert len(got) == 2, got
    assert "max8: src holds NaN (1 elements, first in partition 2)" in got[0]
    assert "nc_find_index8: data holds NaN" in got[1]
    assert all("test_arg_extremes.py:" in w for w in got)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("text, fills", [
    (ARG.format(dt="float32", fn="argmax", body="x[m, n]"), ["-math.inf"]),     # in place
    (ARG.format(dt="bfloat16", fn="argmin", body="x[m, n]"), ["-math.inf"]),    # copied
    (RED.format(fn="max"), ["-math.inf"]), (RED.format(fn="min"), ["math.inf"]),
], ids=["argmax-f32", "argmin-bf16", "max-streamed", "min-streamed"])
def test_generated_fills_are_infinities_not_finite_stand_ins(text, fills, dialect):
    """The pad / accumulator fill is printed as math.inf (the kernels import math), and no
    finite stand-in for an infinity (FLT_MAX, 3e38) is left in the kernel."""
    import re
    src = generate(load_spec_text(text), dialect=dialect)
    memsets = [ln for ln in src.splitlines() if "memset(" in ln]
    assert [f for f in fills if any(re.search(rf"(?<![-\w.]){re.escape(f)}\b", ln)
                                     for ln in memsets)] == fills, memsets
    assert not re.search(r"\de\+?3[78]\b", src), "finite stand-in for an infinity"
    assert "import math" in src
