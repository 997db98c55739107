"""Undocumented classic forms (nkigen.sim.classic.forms): each rule's boundary (the documented
form passes silently, the first undocumented one is reported), as a located warning in the user
profile (the run goes on) and as a located error in the generated profile; classic operand
masking (S25 general/nki/api/nki.api.shared.rst "NKI API Masking") computed."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from nkigen import sim
from nkigen.sim.classic import forms
from nkigen.sim.errors import SimError, UnsupportedError

with sim.installed():
    import neuronxcc.nki.isa as nisa  # noqa: E402
    import neuronxcc.nki.language as nl  # noqa: E402
    from neuronxcc import nki  # noqa: E402


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def enforce(monkeypatch):
    """The generated profile with every rule switched on (as after the merge flip)."""
    monkeypatch.setenv(forms.ENV, "error")
    with forms.profile(forms.GENERATED):
        yield


def warned(res, rule: str) -> list[str]:
    return [w for w in res.warnings if f"[{rule};" in w]


# --- rule mask.sequential-index --------------------------------------------------------------

def _ragged_rows(kind: str, through: str = "plain"):
    """exp over row tiles of 128 with a ragged last tile, the row loop of ``kind``."""
    loop = getattr(nl, f"{kind}_range")

    @nki.jit
    def kern(x):
        n, f = x.shape
        out = nl.ndarray((n, f), dtype=x.dtype, buffer=nl.shared_hbm)
        i_f = nl.arange(f)[None, :]
        for t in loop((n + 127) // 128):
            base = t * 128 if through == "plain" else (t * 2 // 2) * 128
            i_p = base + nl.arange(128)[:, None]
            tile = nl.load(x[i_p, i_f], mask=(i_p < n))
            nl.store(out[i_p, i_f], value=nl.exp(tile, mask=(i_p < n)), mask=(i_p < n))
        return out
    return kern


@pytest.mark.parametrize("kind", ["affine", "static"])
def test_affine_or_static_index_in_a_mask_is_documented(kind, enforce):
    x = rand(200, 8)
    res = sim.run(_ragged_rows(kind), [x], report=False)
    np.testing.assert_allclose(res.outputs[0], np.exp(x), rtol=1e-6)
    assert not warned(res, "mask.sequential-index")


def test_sequential_index_in_a_mask_warns_in_the_user_profile():
    x = rand(200, 8)
    res = sim.run(_ragged_rows("sequential"), [x], report=False)
    np.testing.assert_allclose(res.outputs[0], np.exp(x), rtol=1e-6)   # still simulated
    (w,) = [w for w in warned(res, "mask.sequential-index") if "nl.load" in w]
    assert __file__ in w and "warning: nl.load: mask=" in w
    assert "nl.sequential_range index of line" in w and "NKI API Masking" in w
    assert "in this iteration" in w and "peel the ragged last iteration" in w
    # one warning per kernel line, not one per iteration
    assert len(warned(res, "mask.sequential-index")) == 3


def test_sequential_index_in_a_mask_fails_a_generated_kernel(enforce):
    with pytest.raises(SimError) as e:
        sim.run(_ragged_rows("sequential"), [rand(200, 8)], report=False)
    text = str(e.value)
    assert "test_classic_forms.py:" in text and "mask.sequential-index" in text
    assert "affine expression of nl.arange, nl.affine_range or nl.program_id" in text


def test_non_affine_use_of_an_affine_index_is_flagged(enforce):
    with pytest.raises(SimError, match="non-affine operation on a loop index: '//'"):
        sim.run(_ragged_rows("affine", through="floordiv"), [rand(200, 8)], report=False)


def test_the_per_rule_switch(monkeypatch):
    """forms.GENERATED_ERRORS (flipped at the merge) decides per rule in the generated
    profile: a rule left out warns like the user profile, a rule in it raises."""
    monkeypatch.delenv(forms.ENV, raising=False)
    monkeypatch.setattr(forms, "GENERATED_ERRORS", frozenset({"hbm.slice-past-end"}))
    with forms.profile(forms.GENERATED):
        res = sim.run(_ragged_rows("sequential"), [rand(200, 8)], report=False)
        assert warned(res, "mask.sequential-index")
        monkeypatch.setattr(forms, "GENERATED_ERRORS", frozenset({"mask.sequential-index"}))
        with pytest.raises(SimError, match="mask.sequential-index"):
            sim.run(_ragged_rows("sequential"), [rand(200, 8)], report=False)


def test_env_selects_single_rules(monkeypatch):
    monkeypatch.setenv(forms.ENV, "hbm.slice-past-end")
    with forms.profile(forms.GENERATED):
        assert forms.enforced() == {"hbm.slice-past-end"}
        res = sim.run(_ragged_rows("sequential"), [rand(200, 8)], report=False)
    assert warned(res, "mask.sequential-index")
    assert forms.enforced() == frozenset()        # the user profile never raises


# --- rule select.sequential-index -------------------------------------------------------------

def _causal_rows(kind: str, api: str = "affine_select"):
    """Causal masking of two 128-row tiles: the predicate / iota expression names the row-tile
    index of a loop of ``kind`` (the S25 sd_attention example's affine_select form)."""
    loop = getattr(nl, f"{kind}_range")

    @nki.jit
    def kern(x):
        n, f = x.shape
        out = nl.ndarray((n, f), dtype=nl.float32, buffer=nl.shared_hbm)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(f)[None, :]
        for t in loop(n // 128):
            if api == "affine_select":
                tile = nl.load(x[t * 128 + i_p, i_f])
                res = nisa.affine_select(t * 128 + i_p - i_f >= 0, tile, -1e4)
            else:
                res = nisa.iota(t * 128 + i_p + 0 * i_f, dtype=nl.float32)
            nl.store(out[t * 128 + i_p, i_f], value=res)
        return out
    return kern


def _causal_ref(x, api):
    rows = np.arange(x.shape[0])[:, None]
    cols = np.arange(x.shape[1])[None, :]
    if api == "affine_select":
        return np.where(rows - cols >= 0, x, np.float32(-1e4))
    return np.broadcast_to(rows, x.shape).astype(np.float32)


@pytest.mark.parametrize("api", ["affine_select", "iota"])
@pytest.mark.parametrize("kind", ["affine", "static"])
def test_affine_index_in_a_select_predicate_is_documented(kind, api, enforce):
    x = rand(256, 64)
    res = sim.run(_causal_rows(kind, api), [x], report=False)
    np.testing.assert_allclose(res.outputs[0], _causal_ref(x, api), rtol=1e-6)
    assert not warned(res, "select.sequential-index")


@pytest.mark.parametrize("api", ["affine_select", "iota"])
def test_sequential_index_in_a_select_predicate_fails_a_generated_kernel(api, enforce):
    with pytest.raises(SimError) as e:
        sim.run(_causal_rows("sequential", api), [rand(256, 64)], report=False)
    text = str(e.value)
    assert "test_classic_forms.py:" in text and "select.sequential-index" in text
    assert f"{api}: {'pred' if api == 'affine_select' else 'expr'}" in text
    assert "resolved at compile time" in text and "affine_select / iota" in text


def test_sequential_index_in_a_select_predicate_warns_in_the_user_profile():
    x = rand(256, 64)
    res = sim.run(_causal_rows("sequential"), [x], report=False)
    np.testing.assert_allclose(res.outputs[0], _causal_ref(x, "affine_select"), rtol=1e-6)
    (w,) = warned(res, "select.sequential-index")
    assert "warning: affine_select: pred" in w and "nl.sequential_range index of line" in w
    assert not warned(res, "mask.sequential-index")     # its own rule, not the mask one


# --- rule mask.matmul-lanes -------------------------------------------------------------------

def _matmul(form: str):
    @nki.jit
    def kern(a_t, b):
        k, m = a_t.shape
        _, n = b.shape
        out = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.shared_hbm)
        at = nl.load(a_t)
        bt = nl.load(b)
        for t in nl.affine_range(2):
            i_m = nl.arange(m)[:, None]
            if form == "loop-index":
                ps = nisa.nc_matmul(at, bt, mask=(t < 1))
            elif form == "lanes":
                ps = nisa.nc_matmul(at, bt, mask=(t < 1) & (i_m < m))
            else:
                ps = nisa.nc_matmul(at, bt)
            res = nl.copy(ps, mask=(t < 1))
            nl.store(out, value=res, mask=(t < 1))
        return out
    return kern


def test_loop_index_matmul_mask_is_documented(enforce):
    a, b = rand(64, 32), rand(64, 16, seed=1)
    res = sim.run(_matmul("loop-index"), [a, b], report=False)
    np.testing.assert_allclose(res.outputs[0], a.T @ b, rtol=1e-4, atol=1e-4)
    assert not res.warnings


def test_one_arange_term_in_a_matmul_mask_is_flagged(enforce):
    with pytest.raises(SimError, match=r"mask\.matmul-lanes") as e:
        sim.run(_matmul("lanes"), [rand(64, 32), rand(64, 16, seed=1)], report=False)
    assert "operand masking" in str(e.value) and "arange(32)" in str(e.value)


def test_matmul_lane_mask_warns_in_the_user_profile():
    a, b = rand(64, 32), rand(64, 16, seed=1)
    res = sim.run(_matmul("lanes"), [a, b], report=False)
    np.testing.assert_allclose(res.outputs[0], a.T @ b, rtol=1e-4, atol=1e-4)
    assert len(warned(res, "mask.matmul-lanes")) == 1


# --- operand masking ----------------------------------------------------------------------------

@nki.jit
def _operand_masked(lhs_t, rhs, m_keep, n_keep, transpose_x):
    k, m = lhs_t.shape
    _, n = rhs.shape
    out = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.shared_hbm)
    lt = nl.load(lhs_t)
    rt = nl.load(rhs)
    i_lhs_f = nl.arange(m)[None, :]
    i_rhs_f = nl.arange(n)[None, :]
    if transpose_x:
        ps = nl.matmul(lt[i_lhs_f < m_keep], rt[i_rhs_f < n_keep], transpose_x=True)
    else:
        ps = nisa.nc_matmul(lt[i_lhs_f < m_keep], rt[i_rhs_f < n_keep])
    nl.store(out, value=nl.copy(ps))       # the lanes outside the box are undefined (NaN)
    return out


@pytest.mark.parametrize("api", ["nl.matmul", "nisa.nc_matmul"])
def test_operand_masking_computes_the_kept_box(api, enforce):
    a, b = rand(64, 32), rand(64, 48, seed=1)
    res = sim.run(_operand_masked, [a, b, 20, 40, api == "nl.matmul"], report=False)
    got = res.outputs[0]
    np.testing.assert_allclose(got[:20, :40], (a.T @ b)[:20, :40], rtol=1e-4, atol=1e-4)
    assert np.isnan(got[20:, :]).all() and np.isnan(got[:, 40:]).all()    # not computed
    (mm,) = [i for i in res.instrs if i.op == "nc_matmul"]
    assert (mm.partitions, mm.free) == (64, 40)          # moving: only the kept columns
    assert not res.warnings


def test_operand_masking_whole_and_empty_boxes():
    a, b = rand(64, 32), rand(64, 48, seed=1)
    res = sim.run(_operand_masked, [a, b, 32, 48, True], report=False)
    np.testing.assert_allclose(res.outputs[0], a.T @ b, rtol=1e-4, atol=1e-4)
    res = sim.run(_operand_masked, [a, b, 0, 48, True], report=False)
    assert not [i for i in res.instrs if i.op == "nc_matmul"]      # nothing kept: skipped


def test_operand_masking_outside_matmul_is_an_error():
    @nki.jit
    def kern(x):
        t = nl.load(x)
        i_f = nl.arange(8)[None, :]
        return nl.exp(t[i_f < 4])
    with pytest.raises(SimError, match="an operand mask: documented for nl.matmul"):
        sim.run(kern, [rand(4, 8)], report=False)


def test_operand_masking_of_an_untransposed_x_is_refused():
    @nki.jit
    def kern(x, y):
        t, u = nl.load(x), nl.load(y)
        i_f = nl.arange(8)[None, :]
        return nl.matmul(t[i_f < 4], u)
    with pytest.raises(UnsupportedError, match="transpose_x"):
        sim.run(kern, [rand(8, 8), rand(8, 8)], report=False)


# --- rule hbm.slice-past-end ----------------------------------------------------------------

def _sliced(rows: int):
    @nki.jit
    def kern(x):
        n, f = x.shape
        out = nl.ndarray((rows, f), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p = nl.arange(rows)[:, None]
        t = nl.load(x[0:rows, :], mask=(i_p < n))
        nl.store(out[0:rows, :], value=t, mask=(i_p < n))
        return out
    return kern


def test_slice_ending_at_the_tensor_end_is_documented(enforce):
    x = rand(100, 8)
    res = sim.run(_sliced(100), [x], report=False)
    np.testing.assert_array_equal(res.outputs[0], x)
    assert not res.warnings


def test_slice_one_past_the_end_is_flagged(enforce):
    with pytest.raises(SimError, match=r"hbm\.slice-past-end") as e:
        sim.run(_sliced(101), [rand(100, 8)], report=False)
    text = str(e.value)
    assert "0:101 on dim 0 of size 100" in text and "err_tensor_access_out_of_bound" in text


def test_slice_past_the_end_warns_in_the_user_profile():
    x = rand(100, 8)
    res = sim.run(_sliced(101), [x], report=False)
    np.testing.assert_array_equal(res.outputs[0][:100], x)
    (w,) = warned(res, "hbm.slice-past-end")
    assert "warning: a basic slice of an HBM tensor" in w


def test_arange_index_past_the_end_under_a_mask_is_documented(enforce):
    """The docs' remedy (err_tensor_access_out_of_bound): an arange index with a mask."""
    x = rand(100, 8)
    res = sim.run(_ragged_rows("affine"), [x], report=False)
    np.testing.assert_allclose(res.outputs[0], np.exp(x), rtol=1e-6)


# --- the build's generated profile --------------------------------------------------------------

ADD = """\
nkigen: 1
name: add1
doc: z = x + y on one ragged row tile.
sizes:
  M: {multiple_of: 128}
  N: {min: 1, max: 4096}
inputs:
  x: {shape: [M, N], dtype: float32}
  y: {shape: [M, N], dtype: float32}
outputs:
  z: {shape: [M, N], dtype: float32}
compute:
  - z[m, n] = x[m, n] + y[m, n]
tests:
  cases:
    - {M: 128, N: 100}
"""


@pytest.mark.slow
def test_build_fails_a_generated_kernel_using_a_switched_on_form(tmp_path, monkeypatch, capsys):
    """nkigen build verifies in the generated profile with every rule on (as shipped): a classic
    kernel slicing HBM past its end (the generator's arange index views turned off, as before
    codegen/classic_index.py) fails its spec, located in the kernel; the same build with that
    rule switched off (NKIGEN_CLASSIC_FORMS names only the other rules) succeeds; the shipped
    generator's kernel passes with every rule on."""
    from nkigen.cli import main
    from nkigen.codegen import classic_index

    # every rule but the warning-only ones (index.flat-view: review 13 R13-4)
    assert frozenset(forms.FORM_BY_ID) - forms.WARN_ONLY == forms.GENERATED_ERRORS
    spec = tmp_path / "add1.yaml"
    spec.write_text(ADD)
    args = ["build", str(spec), "--dialect", "neuronxcc", "--no-lint"]
    monkeypatch.delenv(forms.ENV, raising=False)
    assert main(args + ["-o", str(tmp_path / "lib0")]) == 0      # shipped generator: clean
    monkeypatch.setattr(classic_index, "apply", lambda plan: plan)
    assert main(args + ["-o", str(tmp_path / "lib1")]) == 1
    err = capsys.readouterr().err
    assert "kernels/add1.py:" in err and "[hbm.slice-past-end;" in err
    assert "err_tensor_access_out_of_bound" in err and "Traceback" not in err
    others = "mask.sequential-index,mask.matmul-lanes"
    monkeypatch.setenv(forms.ENV, others)
    assert main(args + ["-o", str(tmp_path / "lib2")]) == 0
    # the library's generated suite checks in the generated profile too (shipped switch)
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != forms.ENV}
    suite = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(tmp_path / "lib2" / "tests")]
    r = subprocess.run(suite, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "[hbm.slice-past-end;" in r.stdout, r.stdout[-3000:]
    env[forms.ENV] = others
    r = subprocess.run(suite, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]


# --- no false alarm on the documentation's own classic kernels ---------------------------------

SDK = os.environ.get("NKIGEN_SDK_MIRROR", "/work/.mirror/aws-neuron+aws-neuron-sdk/repo")


@pytest.mark.skipif(not os.path.isdir(SDK), reason="aws-neuron-sdk mirror not present")
@pytest.mark.slow
def test_sdk_2_25_api_examples_use_no_undocumented_form(tmp_path):
    """The S25 API examples (general/nki/test/*.py at tag v2.25.0: the masking section's own
    example among them), run in the simulator, report none of the three forms."""
    import subprocess
    import sys
    from pathlib import Path

    arch = subprocess.run(["git", f"--git-dir={SDK}", "archive", "v2.25.0", "general/nki/test"],
                          capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=arch, check=True)
    script = Path(__file__).parents[1] / "benchmarks" / "classic_forms_public.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "general/nki/test")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path).stdout
    assert re.search(r"tests \{.*'passed': (\d+)", out) and \
        int(re.search(r"'passed': (\d+)", out)[1]) >= 50, out[-2000:]
    for f in forms.FORMS:
        assert f"{f.id}: 0 call sites" in out, out[-2000:]
