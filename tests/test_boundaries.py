"""Every simulator limit pinned at its boundary: the last legal value runs, the first illegal one
fails with the rule's message. Limits are read from nkigen/hw.py, so the test follows the
constant; a loosened or tightened check in the simulator fails here (issue 17).

Sources of the limits are cited in nkigen/hw.py (S25 programming_model.rst, S25 arch guide, KLR).
"""

from __future__ import annotations

import numpy as np
import pytest

import nkigen.sim.nki.isa as nisa
import nkigen.sim.nki.language as nl
from nkigen import hw, sim
from nkigen.sim import SimError

ARG = np.zeros((hw.PMAX, 4), np.float32)


def runs(kernel, target: str = "trn2") -> None:
    sim.run(kernel, [ARG], target, numerics=False, report=False)


def fails(kernel, match: str, target: str = "trn2") -> None:
    with pytest.raises(SimError, match=match):
        sim.run(kernel, [ARG], target, numerics=False, report=False)


# ---- partitions -----------------------------------------------------------------------------

@pytest.mark.parametrize("buffer", ["sbuf", "psum"])
def test_partition_dim(buffer):
    def k(p):
        def kern(a):
            nl.ndarray((p, 4), dtype=nl.float32, buffer=getattr(nl, buffer))
        return kern
    runs(k(hw.PMAX))
    fails(k(hw.PMAX + 1), f"partition dim exceeds {hw.PMAX}")


# ---- matmul: stationary, moving, contraction, PSUM bank -------------------------------------

def _matmul(kdim: int, m: int, n: int, col0: int = 0, tile_size=(), tile_position=()):
    def kern(a):
        s = nl.ndarray((kdim, m), dtype=nl.bfloat16, buffer=nl.sbuf)
        mv = nl.ndarray((kdim, n), dtype=nl.bfloat16, buffer=nl.sbuf)
        nisa.memset(s, 0.0)
        nisa.memset(mv, 0.0)
        acc = nl.ndarray((min(m, hw.PMAX), col0 + n), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc[:, col0:col0 + n], s, mv, tile_size=tile_size,
                       tile_position=tile_position)
    return kern


def test_stationary_free_size():
    runs(_matmul(hw.PMAX, hw.GEMM_STATIONARY_FMAX, 8))
    fails(_matmul(hw.PMAX, hw.GEMM_STATIONARY_FMAX + 1, 8),
          f"stationary free size exceeds gemm_stationary_fmax={hw.GEMM_STATIONARY_FMAX}")


def test_moving_free_size():
    runs(_matmul(hw.PMAX, 8, hw.GEMM_MOVING_FMAX))
    fails(_matmul(hw.PMAX, 8, hw.GEMM_MOVING_FMAX + 1),
          f"moving free size exceeds gemm_moving_fmax={hw.GEMM_MOVING_FMAX}")


def test_contraction_within_a_tile():
    # The full array contracts PMAX rows (more cannot even be allocated: the partition limit);
    # a tile of 64 rows contracts at most 64 (nc_matmul tile_size, SH nki.isa.nc_matmul).
    runs(_matmul(hw.PMAX, 8, 8))
    runs(_matmul(64, 8, 8, tile_size=(64, 128), tile_position=(0, 0)))
    fails(_matmul(65, 8, 8, tile_size=(64, 128), tile_position=(0, 0)),
          "stationary tile \\[65, 8\\] exceeds tile_size \\[64, 128\\]")


def test_matmul_output_fits_one_psum_bank():
    cols = hw.PSUM_BANK_BYTES // 4        # fp32 columns of one bank
    assert cols == hw.GEMM_MOVING_FMAX
    runs(_matmul(hw.PMAX, 8, cols))                    # bytes [0, 2048): exactly one bank
    runs(_matmul(hw.PMAX, 8, cols // 2, col0=cols // 2))   # [1024, 2048): ends at the bank edge
    fails(_matmul(hw.PMAX, 8, cols // 2, col0=cols // 2 + 1),   # [1028, 2052): 4 B over
          f"must fit one PSUM bank \\({hw.PSUM_BANK_BYTES} B/partition\\)")
    runs(_matmul(hw.PMAX, 8, 8, col0=cols))            # starts exactly at the next bank


# ---- capacities -----------------------------------------------------------------------------

@pytest.mark.parametrize("target", sorted(hw.TARGETS))
def test_sbuf_capacity_exact_bytes(target):
    cap = hw.target(target).sbuf_bytes_per_partition

    def k(nbytes):
        def kern(a):
            nl.ndarray((hw.PMAX, nbytes), dtype=nl.uint8, buffer=nl.sbuf)
        return kern
    runs(k(cap), target)
    fails(k(cap + 1), f"SBUF capacity exceeded.*{cap + 1} > {cap} B/partition", target)


def test_psum_capacity_in_banks():
    def k(n, cols=1):
        def kern(a):
            keep = [nl.ndarray((hw.PMAX, cols), dtype=nl.float32, buffer=nl.psum)
                    for _ in range(n)]
            assert len(keep) == n
        return kern
    runs(k(hw.PSUM_BANKS))                 # each tile takes a whole bank
    fails(k(hw.PSUM_BANKS + 1), "PSUM capacity exceeded")
    per_bank = hw.PSUM_BANK_BYTES // 4
    runs(k(1, hw.PSUM_BANKS * per_bank))   # one tile of all 16 KiB
    fails(k(1, hw.PSUM_BANKS * per_bank + 1), "PSUM capacity exceeded")


# ---- engine free-size limits ----------------------------------------------------------------

def _memset(n: int, buffer: str):
    def kern(a):
        t = nl.ndarray((hw.PMAX, n), dtype=nl.bfloat16, buffer=getattr(nl, buffer))
        nisa.memset(t, 0.0)
    return kern


def test_sbuf_engine_free_size():
    runs(_memset(hw.SBUF_FMAX_ELEMS, "sbuf"))
    fails(_memset(hw.SBUF_FMAX_ELEMS + 1, "sbuf"),
          f"more than {hw.SBUF_FMAX_ELEMS} elements per partition \\(SBUF")


def test_psum_engine_free_size():
    runs(_memset(hw.PSUM_FMAX_ELEMS_ENGINE, "psum"))
    fails(_memset(hw.PSUM_FMAX_ELEMS_ENGINE + 1, "psum"),
          f"more than {hw.PSUM_FMAX_ELEMS_ENGINE} elements per partition \\(PSUM")


def test_bn_stats_free_size():
    def k(n):
        def kern(a):
            t = nl.ndarray((hw.PMAX, n), dtype=nl.float32, buffer=nl.sbuf)
            nisa.memset(t, 0.0)
            st = nl.ndarray((hw.PMAX, 6), dtype=nl.float32, buffer=nl.sbuf)
            nisa.bn_stats(st, t)
        return kern
    runs(k(hw.BN_STATS_FMAX))
    fails(k(hw.BN_STATS_FMAX + 1), f"free size exceeds bn_stats_fmax={hw.BN_STATS_FMAX}")


def test_access_pattern_free_dims():
    def k(dims):
        def kern(a):
            t = nl.ndarray((hw.PMAX,) + (3,) * dims, dtype=nl.float32)
            nisa.memset(t, 0.0)
            nisa.memset(t[(slice(None),) + (slice(0, 2),) * dims], 1.0)   # no dims merge
        return kern
    runs(k(hw.MAX_AP_FREE_DIMS))
    fails(k(hw.MAX_AP_FREE_DIMS + 1), f"needs more than {hw.MAX_AP_FREE_DIMS} free")


@pytest.mark.parametrize(("engine", "lim"), [("vector", 32), ("tensor", hw.PMAX)])
def test_transpose_size(engine, lim):
    # SH nki.isa.nc_transpose: VectorE transposes at most 32x32, TensorE 128x128.
    def k(p, f):
        def kern(a):
            src = nl.ndarray((p, f), dtype=nl.float32, buffer=nl.sbuf)
            nisa.memset(src, 0.0)
            buf = nl.psum if engine == "tensor" else nl.sbuf
            dst = nl.ndarray((f, p), dtype=nl.float32, buffer=buf)
            nisa.nc_transpose(dst, src, engine=getattr(nisa, f"{engine}_engine"))
        return kern
    runs(k(lim, lim))
    if lim < hw.PMAX:   # TensorE: 129 rows cannot even be allocated (the partition limit)
        fails(k(lim + 1, 1), f"transposes at most {lim}x{lim}")
        fails(k(1, lim + 1), f"transposes at most {lim}x{lim}")
