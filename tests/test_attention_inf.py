"""Softmax and attention kernels on scores holding ``-inf`` (masked attention): generated
kernels run in the simulator on chosen inputs and must agree with the float64 reference
(``nkigen.reference``), NaN where it is NaN.

Masked attention puts ``-inf`` into the scores: an additive mask input with ``-inf`` for
padded keys (left padding masks the *first* keys of a row), or inputs holding infinities. The
fused attention kernels (``nkigen.codegen.attention``) take the keys in blocks with an online
softmax; a row whose first key block is all ``-inf`` has a block max of ``-inf``, and
``exp(s - max)`` there is ``exp(-inf + inf) = NaN`` unless the exponent's bias is kept finite.
The reference takes the max over the whole row, so such a row is finite; a row of all ``-inf``
is NaN in the reference (``-inf - -inf``) and must be NaN in the kernel too.

Scores of ``-inf`` reach the fused kernels through the inputs (``q[:, 0] = 1`` and
``k[n, 0] = -inf``); row-major q/k are transposed on the way, and on NeuronCore-v2 (trn1) the
TensorE transpose is a matmul with an identity (SH nki/api/nki/isa/__init__.py nc_transpose,
nki 0.3: bit-accurate from NeuronCore-v3 only), so an infinity there becomes NaN in the
simulator as on the hardware: the trn1 cases here use q/k stored d-major (plain loads).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import load_source  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.reference import evaluate  # noqa: E402
from nkigen.testdata import tolerance  # noqa: E402

# the slow tier (pytest -m slow; CI runs it): README's test command stays under 4 minutes
pytestmark = pytest.mark.slow

SPECS = Path(__file__).resolve().parent.parent / "specs"
INF = np.inf
NP_DT = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}


@cache
def _kernel(text: str, dialect: str, target: str):
    """(spec, source, loaded kernel): generated once per spec text, dialect and target (the
    tests run each kernel on several inputs; a kernel object runs any number of times)."""
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect=dialect)
    return spec, src, load_source(src, spec.name)


def _run(text: str, dialect: str, target: str, ins: dict[str, np.ndarray],
         sizes: dict[str, int], what: str, fused: bool = False) -> dict[str, np.ndarray]:
    """Generate, simulate and compare every output with the reference: NaN exactly where the
    reference is NaN, infinities equal, the rest within the spec's tolerance. ``fused``: the
    spec must be lowered by the attention kernel (its online-softmax key blocks)."""
    import nkigen.sim as sim
    spec, src, kernel = _kernel(text, dialect, target)
    assert not fused or "KEY_BLOCK" in src, f"{spec.name}: not the fused attention kernel"
    args = [ins[t.name].astype(NP_DT[t.dtype.name]) for t in spec.inputs]
    want = evaluate(spec, dict(zip([t.name for t in spec.inputs], args)), sizes)
    got = sim.simulate(kernel, target)(*args)
    got = got if isinstance(got, tuple) else (got,)
    rtol, atol = tolerance(spec, sizes, want)
    for t, g in zip(spec.outputs, got):
        g, w = np.asarray(g, dtype=np.float64), want[t.name]
        where = f"{spec.name} {dialect} {target} {what}: {t.name}"
        nan_g, nan_w = np.isnan(g), np.isnan(w)
        assert (nan_g == nan_w).all(), (
            f"{where}: NaN at {np.argwhere(nan_g != nan_w)[:4].tolist()} "
            f"(kernel NaN {int(nan_g.sum())}, reference NaN {int(nan_w.sum())})")
        ok = ~nan_w
        with np.errstate(invalid="ignore"):          # inf - inf where both are infinite
            bad = np.abs(g[ok] - w[ok]) > atol + rtol * np.abs(w[ok])
        bad |= np.isinf(w[ok]) & (g[ok] != w[ok])
        assert not bad.any(), (f"{where}: {int(bad.sum())} elements off, e.g. "
                               f"{g[ok][bad][:4].tolist()} vs {w[ok][bad][:4].tolist()}")
    return want


# ---- fused attention (nkigen.codegen.attention) --------------------------------------------

def _qk_inf(m: int, n: int, d: int, ninf: tuple[int, int], seed: int,
            dmajor: bool = False) -> dict[str, np.ndarray]:
    """q, k, v with scores ``-inf`` for keys ``ninf[0]:ninf[1]`` of every row (q[:, 0] = 1,
    k[n, 0] = -inf there, 0 elsewhere: no 0 * inf)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(m, d))
    q[:, 0] = 1.0
    k = rng.normal(size=(n, d))
    k[:, 0] = 0.0
    k[ninf[0]:ninf[1], 0] = -INF
    v = rng.normal(size=(n, d))
    if dmajor:
        return {"q": q.T.copy(), "k": k.T.copy(), "v": v}
    return {"q": q, "k": k, "v": v}


def _heads(x: dict[str, np.ndarray], h: int) -> dict[str, np.ndarray]:
    return {key: np.stack([a] * h) for key, a in x.items()}


# (first, last) -inf keys: the whole first block (the nki dialect's 2048-key block, the classic
# dialect's 512..2048), more than one block, a ragged middle run, every key (NaN row)
RUNS = {"first block": (0, 2048), "first blocks": (0, 2060), "middle": (700, 1500),
        "all": (0, None)}


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name", ["attention", "attention_probs", "attention_heads"])
def test_shipped_attention_with_infinite_scores_matches_the_reference(name, dialect):
    """The shipped fused specs on trn2 (DMA transposes of q/k), 2100 keys: three blocks of
    1024 or one of 2048 and a ragged one; M = 130 (a ragged query tile) where allowed."""
    text = (SPECS / f"{name}.yaml").read_text()
    m = 128 if name == "attention_probs" else 130
    for what, (a, z) in RUNS.items():
        n = 2100
        x = _qk_inf(m, n, 64, (a, n if z is None else z), seed=a)
        sizes = {"M": m, "N": n, "D": 64}
        if name == "attention_heads":
            x, sizes = _heads(x, 2), dict(sizes, H=2)
        _run(text, dialect, "trn2", x, sizes, what, fused=True)


DMAJOR = """\
nkigen: 1
name: attn_dmajor
sizes:
  M: {{min: 1, max: 512}}
  N: {{min: 1, max: 4096}}
  D: {{min: 1, max: 128}}
params:
  c: {c}
inputs:
  q: {{shape: [D, M], dtype: {dt}}}
  k: {{shape: [D, N], dtype: {dt}}}
{vin}outputs:
  {out}: {{shape: [M, {ocol}], dtype: {dt}}}
temps:
  s: {{shape: [M, N], dtype: float32}}
  mx: {{shape: [M], dtype: float32}}
  e: {{shape: [M, N], dtype: float32}}
  l: {{shape: [M], dtype: float32}}
{ptemp}compute:
  - s[m, n] += q[d, m] * k[d, n]
  - mx[m] = max(s[m, n], n)
  - e[m, n] = exp({cexpr}(s[m, n] - mx[m]))
  - l[m] = sum(e[m, n], n)
  - p[m, n] = e[m, n] / l[m]
{pv}"""


def _dmajor(c: float, dt: str, flash: bool) -> str:
    return DMAJOR.format(
        c=c, dt=dt, out="o" if flash else "p", ocol="D" if flash else "N",
        vin=f"  v: {{shape: [N, D], dtype: {dt}}}\n" if flash else "",
        cexpr="" if c == 1.0 else "c * ",
        ptemp=f"  p: {{shape: [M, N], dtype: {dt}}}\n" if flash else "",
        pv="  - o[m, j] += p[m, n] * v[n, j]\n" if flash else "")


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize(("c", "dt", "flash", "target"), [
    (1.0, "float32", False, "trn2"),  # exp bias = -max itself (no scaling instruction)
    (1.0, "float32", False, "trn1"),
    (1.0, "bfloat16", True, "trn2"),
    (2.0, "float32", False, "trn2"),  # c * 3e38 overflows fp32: the bias must stay finite
    (2.0, "float32", False, "trn1"),
    (2.0, "bfloat16", False, "trn2"),  # bf16 p: a tile of its own (classic: whole key blocks)
    (2.0, "bfloat16", True, "trn1"),
    (0.5, "float32", True, "trn2"),
])
def test_dmajor_attention_with_infinite_scores_matches_the_reference(c, dt, flash, target,
                                                                      dialect):
    """User specs with q/k stored d-major (no transposes: runs on trn1 too), softmax scales
    1 (the bias is the running -max itself), 2 (``c * 3e38`` overflows fp32) and 0.5; fp32
    and bf16; 2100 keys (ragged last block) and 300 (one block, the first 200 keys -inf)."""
    text = _dmajor(c, dt, flash)
    for what, (a, z) in dict(RUNS, short=(0, 200)).items():
        n = 300 if what == "short" else 2100
        if flash and what == "first blocks":
            continue                   # same blocks as "first block" for the 2100-key case
        x = _qk_inf(130, n, 64, (a, n if z is None else z), seed=a, dmajor=True)
        _run(text, dialect, target, x, {"M": 130, "N": n, "D": 64}, what, fused=True)


# ---- the user's masked attention (additive mask) and plain softmax specs -------------------

MASKED = """\
nkigen: 1
name: masked_attention
sizes:
  M: {{min: 1, max: 512}}
  N: {{min: 1, max: 4096}}
  D: {{min: 1, max: 128}}
params:
  scale: 0.125
inputs:
  q: {{shape: [M, D], dtype: bfloat16}}
  k: {{shape: [N, D], dtype: bfloat16}}
{vin}  mask: {{shape: [M, N], dtype: float32}}
outputs:
  {out}: {{shape: [M, {ocol}], dtype: {dt}}}
temps:
  s: {{shape: [M, N], dtype: float32}}
  sm: {{shape: [M, N], dtype: float32}}
  mx: {{shape: [M], dtype: float32}}
  e: {{shape: [M, N], dtype: float32}}
  l: {{shape: [M], dtype: float32}}
{ptemp}compute:
  - s[m, n] += q[m, d] * k[n, d]
  - sm[m, n] = scale * s[m, n] + mask[m, n]
  - mx[m] = max(sm[m, n], n)
  - e[m, n] = exp(sm[m, n] - mx[m])
  - l[m] = sum(e[m, n], n)
  - p[m, n] = e[m, n] / l[m]
{pv}"""


def _mask(m: int, n: int, seed: int, full_row: bool) -> np.ndarray:
    """Per-row -inf patterns: left padding of 1, 500, 2048 and 2060 keys, right padding, a
    middle run, scattered -inf, none; with ``full_row`` also a row of all -inf."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((m, n))
    for r, pad in enumerate((1, 500, 2048, 2060)):
        mask[r::16, :min(pad, n - 1)] = -INF
    mask[4::16, n // 2:] = -INF
    mask[5::16, n // 4:n // 2] = -INF
    mask[6::16] = np.where(rng.random((len(mask[6::16]), n)) < 0.3, -INF, 0.0)
    if full_row:
        mask[7] = -INF
        mask[-1] = -INF                    # in the ragged query tile
    return mask


@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("flash", [False, True])
def test_masked_attention_matches_the_reference(flash, dialect, target):
    """The additive-mask form users write (not the fused pattern: the scores go through HBM
    and the softmax takes whole rows). Rows of all -inf are NaN in the reference; with
    ``p @ v`` a NaN row of p reaches every query of its tile through the transpose on trn1
    (a matmul with an identity on NeuronCore-v2, see the module doc), so there the full -inf
    rows are left out."""
    text = MASKED.format(vin="  v: {shape: [N, D], dtype: bfloat16}\n" if flash else "",
                         out="o" if flash else "p", ocol="D" if flash else "N",
                         dt="bfloat16" if flash else "float32",
                         ptemp="  p: {shape: [M, N], dtype: bfloat16}\n" if flash else "",
                         pv="  - o[m, j] += p[m, n] * v[n, j]\n" if flash else "")
    m, n = 130, 2100
    rng = np.random.default_rng(1)
    x = {"q": rng.normal(size=(m, 64)), "k": rng.normal(size=(n, 64)),
         "v": rng.normal(size=(n, 64)),
         "mask": _mask(m, n, 2, full_row=not (flash and target == "trn1"))}
    _run(text, dialect, target, x, {"M": m, "N": n, "D": 64}, "mask")


SOFTMAX_BF16 = """\
nkigen: 1
name: softmax_bf16
sizes:
  M: {min: 1, max: 512}
  N: {min: 1, max: 8192}
inputs:
  x: {shape: [M, N], dtype: bfloat16}
outputs:
  y: {shape: [M, N], dtype: bfloat16}
temps:
  mx: {shape: [M], dtype: float32}
  e: {shape: [M, N], dtype: float32}
  s: {shape: [M], dtype: float32}
compute:
  - mx[m] = max(x[m, n], n)
  - e[m, n] = exp(x[m, n] - mx[m])
  - s[m] = sum(e[m, n], n)
  - y[m, n] = e[m, n] / s[m]
"""


@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmax_bf16"])
def test_softmax_of_rows_with_infinities_matches_the_reference(name, dialect, target):
    """softmax / log_softmax (fp32) and a bf16 softmax on masked rows (the mask patterns
    above added to normal data, rows of all -inf included) with 2100 columns."""
    text = SOFTMAX_BF16 if name == "softmax_bf16" else (SPECS / f"{name}.yaml").read_text()
    m, n = 130, 2100
    x = np.random.default_rng(3).normal(size=(m, n)) * 3 + _mask(m, n, 4, full_row=True)
    _run(text, dialect, target, {"x": x}, {"M": m, "N": n}, "mask")


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name", ["gqa_scores", "causal_scores"])
def test_score_kernels_keep_infinite_scores(name, dialect):
    """The shipped score-only kernels (no softmax) on trn2: keys holding -inf give -inf scores
    exactly where the reference has them (causal_scores: -30000 past the diagonal)."""
    text = (SPECS / f"{name}.yaml").read_text()
    m, n = 128, 256
    x = _qk_inf(m, n, 128, (100, 160), seed=5)
    if name == "gqa_scores":
        x = {"q": np.stack([x["q"]] * 4), "k": x["k"][None]}
        sizes = {"KV": 1, "H": 4, "M": m, "N": n, "D": 128}
    else:
        sizes = {"M": m, "N": n, "D": 128}
    want = _run(text, dialect, "trn2", x, sizes, "keys 100:160")
    assert np.isneginf(want["s"]).any()


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_multi_head_attention_with_unit_scale_and_infinite_scores(dialect):
    """attention_heads with scale 1 (the exp bias is the running -max itself; nki: the bank
    maxima's -FLT_MAX column, one tile per head loop iteration) on trn2."""
    text = (SPECS / "attention_heads.yaml").read_text().replace("scale: 0.125", "scale: 1.0")
    for what, (a, z) in RUNS.items():
        n = 2100
        x = _heads(_qk_inf(100, n, 32, (a, n if z is None else z), seed=a), 2)
        x["q"] = x["q"] * 0.2
        x["q"][..., 0] = 1.0
        _run(text, dialect, "trn2", x, {"H": 2, "M": 100, "N": n, "D": 32}, what, fused=True)
