"""Cost model on traces from the simulator: the tutorial-structure matmul kernels."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkigen import sim
from nkigen.sim import cost

KERNELS = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels" / "matmul_tutorial.py"
K, M, N = 1024, 256, 2048


@pytest.fixture(scope="module")
def reports() -> dict:
    kernels = sim.load(KERNELS, "KERNELS")
    a, b = sim.placeholder((K, M), "bfloat16"), sim.placeholder((K, N), "bfloat16")
    out = {}
    for name in ("tiled", "hoisted", "block_free"):
        res = sim.run(kernels[name], [a, b], target="trn1", numerics=False)
        out[name] = cost.estimate(res.instrs, "trn1")
    return out


def test_tiled_matmul_report(reports):
    r = reports["tiled"]
    assert r.latency_us > 0 and 0 < r.hfu <= 1 and 0 < r.mbu <= 1
    assert r.matmul_flops == 2 * K * M * N
    assert r.instr_counts["tensor"] == (K // 128) * (M // 128) * (N // 512)


def test_hoisting_loads_is_modelled_faster(reports):
    assert reports["hoisted"].latency_us < reports["tiled"].latency_us
    assert reports["hoisted"].hbm_bytes < reports["tiled"].hbm_bytes
    assert reports["block_free"].latency_us < reports["hoisted"].latency_us


def test_simulator_attaches_a_report():
    kernels = sim.load(KERNELS, "KERNELS")
    a, b = sim.placeholder((256, 128), "bfloat16"), sim.placeholder((256, 512), "bfloat16")
    res = sim.run(kernels["tiled"], [a, b], target="trn2", numerics=False)
    assert res.report is not None and res.report.target == "trn2"
    assert "not a measurement" in res.report.model
