"""Benchmark: the matmul-tutorial calibration kernels written in the classic API
(``neuronxcc.nki``), estimated side by side with the current-API kernels of
benchmarks/kernels/matmul_tutorial.py.

Stage: benchmark (simulate cost-only -> cost model -> table). Same shapes, dtype and target as
benchmarks/bench_sim_calibration.py (lhsT [8192, 4096], rhs [8192, 8192], bf16, trn1, numerics
off). Each classic kernel has the loop structure of its current-API twin, written the classic
way: ``nl.load`` / ``nl.store`` returning and taking tiles, ISA calls returning tiles, PSUM
accumulation with ``acc += nisa.nc_matmul(...)``, a block-dimension (``nl.par_dim``) buffer in
the hoisted kernel. Both run on the same simulator core, so the same instruction stream gets the
same estimate. Three classic variants per kernel: the first product of each accumulation group
starts it (``acc = nisa.nc_matmul(...)``, then ``+=``); the tutorial idiom
``acc = nl.zeros(..., buffer=nl.psum)`` then ``+=`` (``zeros=True``), whose memset the simulator
elides (nkigen/sim/classic/zeroing.py: a modelled compiler behaviour); and the same idiom with
the memset issued ("eager", one more VectorE instruction per group) to show what the elision is
worth against the published figures.

    python benchmarks/bench_classic_calibration.py [--target trn1] [--small] [--check] [--specs]

``--small`` runs [2048 x 2048] @ [2048 x 2048] instead of the full size; ``--check`` also runs
that size with numbers and compares every classic kernel's output with its twin's; ``--specs``
adds a table of every shipped spec generated in both dialects (``nkigen gen --dialect``),
estimated cost-only at its largest test case scaled by ``--scale``.
The figures are cost-model estimates, not measurements.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from nkigen import sim
from nkigen.sim.classic import zeroing

sys.path.insert(0, str(Path(__file__).parent))
from bench_sim_calibration import KERNELS_FILE, PUBLISHED, K, M, N  # noqa: E402

with sim.installed():
    import neuronxcc.nki.isa as nisa
    import neuronxcc.nki.language as nl
    from neuronxcc import nki

TILE_K, TILE_M, TILE_N = 128, 128, 512


def _group(kt: int, operands, zeros: bool):
    """One PSUM accumulation group over ``kt`` K tiles; ``operands(k)`` gives (stationary,
    moving). ``zeros``: the tutorial idiom (nl.zeros + ``+=``, one extra memset per group);
    otherwise the first product starts the group (the current API's implicit reset)."""
    if zeros:
        acc = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
        for k in nl.affine_range(kt):
            acc += nisa.nc_matmul(*operands(k))
        return acc
    acc = nisa.nc_matmul(*operands(0))
    for k in nl.affine_range(1, kt):
        acc += nisa.nc_matmul(*operands(k))
    return acc


def _evict(out, acc, m0: int, n0: int) -> None:
    """PSUM -> SBUF (downcast) -> HBM."""
    nl.store(out[m0:m0 + TILE_M, n0:n0 + TILE_N], value=nisa.tensor_copy(acc, dtype=out.dtype))


@nki.jit
def matmul_tiled(lhsT, rhs, zeros: bool = False):
    K, M = lhsT.shape
    _, N = rhs.shape
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            def tiles(k, m=m, n=n):
                a = nl.load(lhsT[k * TILE_K:(k + 1) * TILE_K, m * TILE_M:(m + 1) * TILE_M])
                b = nl.load(rhs[k * TILE_K:(k + 1) * TILE_K, n * TILE_N:(n + 1) * TILE_N])
                return a, b
            acc = _group(K // TILE_K, tiles, zeros)
            _evict(out, acc, m * TILE_M, n * TILE_N)
    return out


@nki.jit
def matmul_hoisted(lhsT, rhs, zeros: bool = False):
    K, M = lhsT.shape
    _, N = rhs.shape
    kt = K // TILE_K
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    i_k = nl.arange(TILE_K)[:, None]
    i_m = nl.arange(TILE_M)[None, :]
    for m in nl.affine_range(M // TILE_M):
        a = nl.ndarray((kt, nl.par_dim(TILE_K), TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
        for k in nl.affine_range(kt):
            a[k] = nl.load(lhsT[k * TILE_K + i_k, m * TILE_M + i_m])
        for n in nl.affine_range(N // TILE_N):
            b = nl.ndarray((TILE_K, kt, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
            for k in nl.affine_range(kt):
                b[:, k, :] = nl.load(rhs[k * TILE_K:(k + 1) * TILE_K,
                                         n * TILE_N:(n + 1) * TILE_N])
            acc = _group(kt, lambda k, a=a, b=b: (a[k], b[:, k, :]), zeros)
            _evict(out, acc, m * TILE_M, n * TILE_N)
            del b
        del a
    return out


@nki.jit
def matmul_block_free(lhsT, rhs, tiles_m: int = 2, tiles_n: int = 2, zeros: bool = False):
    K, M = lhsT.shape
    _, N = rhs.shape
    kt = K // TILE_K
    block_m, block_n = tiles_m * TILE_M, tiles_n * TILE_N
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for mb in nl.affine_range(M // block_m):
        a = nl.ndarray((TILE_K, tiles_m, kt, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
        for i in nl.affine_range(tiles_m):
            m0 = mb * block_m + i * TILE_M
            for k in nl.affine_range(kt):
                a[:, i, k, :] = nl.load(lhsT[k * TILE_K:(k + 1) * TILE_K, m0:m0 + TILE_M])
        for nb in nl.affine_range(N // block_n):
            b = nl.ndarray((TILE_K, tiles_n, kt, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
            for j in nl.affine_range(tiles_n):
                n0 = nb * block_n + j * TILE_N
                for k in nl.affine_range(kt):
                    b[:, j, k, :] = nl.load(rhs[k * TILE_K:(k + 1) * TILE_K, n0:n0 + TILE_N])
            for i in nl.affine_range(tiles_m):
                for j in nl.affine_range(tiles_n):
                    acc = _group(kt, lambda k, a=a, b=b, i=i, j=j: (a[:, i, k, :],
                                                                     b[:, j, k, :]), zeros)
                    _evict(out, acc, mb * block_m + i * TILE_M, nb * block_n + j * TILE_N)
            del b
        del a
    return out


@nki.jit
def matmul_fully_blocked(lhsT, rhs, tiles_m: int = 16, tiles_n: int = 2, tiles_k: int = 8,
                         zeros: bool = False):
    K, M = lhsT.shape
    _, N = rhs.shape
    block_m, block_n, block_k = tiles_m * TILE_M, tiles_n * TILE_N, tiles_k * TILE_K
    n_mt = M // TILE_M
    out = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for nb in nl.affine_range(N // block_n):
        res = nl.ndarray((TILE_M, n_mt, block_n), dtype=lhsT.dtype, buffer=nl.sbuf)
        res[...] = 0.0
        for kb in nl.sequential_range(K // block_k):
            b = nl.ndarray((TILE_K, tiles_k, block_n), dtype=rhs.dtype, buffer=nl.sbuf)
            for bk in nl.affine_range(tiles_k):
                k0 = kb * block_k + bk * TILE_K
                b[:, bk, :] = nl.load(rhs[k0:k0 + TILE_K, nb * block_n:(nb + 1) * block_n])
            for mb in nl.affine_range(M // block_m):
                a = nl.ndarray((TILE_K, tiles_k, block_m), dtype=lhsT.dtype, buffer=nl.sbuf)
                for bk in nl.affine_range(tiles_k):
                    k0 = kb * block_k + bk * TILE_K
                    a[:, bk, :] = nl.load(lhsT[k0:k0 + TILE_K,
                                               mb * block_m:(mb + 1) * block_m])
                for j in nl.affine_range(tiles_n):
                    for i in nl.affine_range(tiles_m):
                        acc = _group(tiles_k, lambda bk, a=a, b=b, i=i, j=j: (
                            a[:, bk, i * TILE_M:(i + 1) * TILE_M],
                            b[:, bk, j * TILE_N:(j + 1) * TILE_N]), zeros)
                        res[:, mb * tiles_m + i, j * TILE_N:(j + 1) * TILE_N] += acc
                del a
            del b
        for mt in nl.affine_range(n_mt):
            nl.store(out[mt * TILE_M:(mt + 1) * TILE_M, nb * block_n:(nb + 1) * block_n],
                     value=res[:, mt, :])
        del res
    return out


CLASSIC = {
    "tiled": matmul_tiled,
    "hoisted": matmul_hoisted,
    "block_free": matmul_block_free,
    "fully_blocked": matmul_fully_blocked,
}


def _estimate(kernel, k: int, m: int, n: int, target: str, **kwargs):
    args = [sim.placeholder((k, m), "bfloat16"), sim.placeholder((k, n), "bfloat16")]
    t0 = time.perf_counter()
    res = sim.run(kernel, args, target=target, numerics=False, kwargs=kwargs)
    return res, time.perf_counter() - t0


def check_numbers(current: dict, target: str) -> list[str]:
    """Small-size numeric run of every pair: the classic output must equal its twin's."""
    rng = np.random.default_rng(0)
    import ml_dtypes
    lhsT = rng.standard_normal((2048, 2048)).astype(ml_dtypes.bfloat16)
    rhs = rng.standard_normal((2048, 2048)).astype(ml_dtypes.bfloat16)
    bad = []
    for name, ck in CLASSIC.items():
        a = sim.run(current[name], [lhsT, rhs], target=target, report=False).outputs[0]
        for zeros in (False, True):
            b = sim.run(ck, [lhsT, rhs], target=target, report=False,
                        kwargs={"zeros": zeros}).outputs[0]
            if not np.array_equal(a.astype(np.float32), b.astype(np.float32)):
                bad.append(f"{name}{' (zeros)' if zeros else ''}")
    return bad


def spec_table(target: str, scale: int) -> None:
    """Both dialects of every spec in specs/, cost-only at the largest test case x scale."""
    from nkigen.codegen import generate
    from nkigen.frontend import load_spec
    from nkigen.library.shapes import input_shapes
    from nkigen.testdata import cases
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from codegen_check import load_source

    print(f"\nshipped specs, both dialects, cost-only on {target} (largest test case, free "
          f"sizes x{scale} where their max allows)")
    print(f"{'spec':<18} {'sizes':<26} {'nki us':>9} {'classic us':>11} {'ratio':>7} "
          f"{'same':>5} {'eager us':>9} {'ratio':>7} {'instrs':>7} {'SBUF peak B':>13}")
    for path in sorted((Path(__file__).parent.parent / "specs").glob("*.yaml")):
        spec = load_spec(path)
        case = max(cases(spec), key=lambda c: np.prod(list(c.values())))
        case = _scaled(spec, case, scale)
        shapes = input_shapes(spec, case)
        args = [sim.placeholder(shapes[t.name], t.dtype.value) for t in spec.inputs]
        kern = {d: load_source(generate(spec, target=target, dialect=d), spec.name)
                for d in ("nki", "neuronxcc")}
        a = sim.run(kern["nki"], args, target=target, numerics=False)
        b = sim.run(kern["neuronxcc"], args, target=target, numerics=False)
        with zeroing.eager():
            e = sim.run(kern["neuronxcc"], args, target=target, numerics=False)
        la, lb, le = (r.report.latency_us for r in (a, b, e))
        same = "yes" if [_key(i) for i in a.instrs] == [_key(i) for i in b.instrs] else "NO"
        sizes = ",".join(f"{k}={v}" for k, v in case.items())
        print(f"{spec.name:<18} {sizes:<26} {la:9.2f} {lb:11.2f} {lb / la:7.4f} {same:>5} "
              f"{le:9.2f} {le / la:7.4f} {len(a.instrs):7d} "
              f"{a.peak_sbuf_bytes:6d}/{b.peak_sbuf_bytes:<6d}")


def _scaled(spec, case: dict, scale: int) -> dict:
    """Free sizes grow by ``scale`` where their ``max`` allows (multiples stay multiples)."""
    out = dict(case)
    for s in spec.free_sizes:
        if s.name in out and (s.max is None or out[s.name] * scale <= s.max):
            out[s.name] = out[s.name] * scale
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="trn1")
    ap.add_argument("--small", action="store_true", help="[1024x2048] @ [2048x2048]")
    ap.add_argument("--check", action="store_true", help="compare outputs at a small size")
    ap.add_argument("--specs", action="store_true", help="both dialects of every shipped spec")
    ap.add_argument("--scale", type=int, default=1, help="--specs: grow free sizes by this")
    args = ap.parse_args(argv)
    k, m, n = (2048, 2048, 2048) if args.small else (K, M, N)
    current = sim.load(KERNELS_FILE, "KERNELS")
    print(f"matmul [{m}x{k}] @ [{k}x{n}] bf16 on {args.target}: current nki API vs classic "
          "neuronxcc.nki, same simulator core, cost model estimates (not measurements)\n")
    print(f"{'kernel':<14} {'nki ms':>8} {'classic':>8} {'ratio':>6} {'same':>5} "
          f"{'zeros':>8} {'ratio':>6} {'same':>5} {'eager':>8} {'ratio':>6} {'pub ms':>7} "
          f"{'instrs':>7} {'wall s nki/cls':>15}")
    for name, ck in CLASSIC.items():
        a, ta = _estimate(current[name], k, m, n, args.target)
        b, tb = _estimate(ck, k, m, n, args.target)
        z, _ = _estimate(ck, k, m, n, args.target, zeros=True)
        with zeroing.eager():
            e, _ = _estimate(ck, k, m, n, args.target, zeros=True)
        la, lb, lz, le = (r.report.latency_us / 1e3 for r in (a, b, z, e))
        ref = [_key(i) for i in a.instrs]
        same_b = "yes" if ref == [_key(i) for i in b.instrs] else "NO"
        same_z = "yes" if ref == [_key(i) for i in z.instrs] else "NO"
        pub = f"{PUBLISHED[name][0]:7.2f}" if not args.small else f"{'-':>7}"
        print(f"{name:<14} {la:8.3f} {lb:8.3f} {lb / la:6.3f} {same_b:>5} {lz:8.3f} "
              f"{lz / la:6.3f} {same_z:>5} {le:8.3f} {le / la:6.3f} {pub} {len(a.instrs):7d} "
              f"{ta:7.1f}/{tb:<7.1f}")
    print("\nclassic: acc = nisa.nc_matmul(...) then +=;  zeros: acc = nl.zeros(psum) then +=, "
          "memset elided;\neager: the same with the memset issued (one VectorE memset per "
          "group, ordered before the group's first matmul); same: identical instruction stream")
    if args.specs:
        spec_table(args.target, args.scale)
    if args.check:
        bad = check_numbers(current, args.target)
        print("numeric check [2048x2048] @ [2048x2048]:",
              "all classic outputs equal their twins'" if not bad else f"DIFFER: {bad}")
        return 1 if bad else 0
    return 0


def _key(ins) -> tuple:
    return (ins.engine, ins.op.rsplit(".", 1)[-1], ins.partitions, ins.free, ins.dtype,
            ins.out_dtype, ins.nbytes, ins.chunk_bytes, ins.accumulate, ins.in_psum,
            len(ins.reads), tuple((r.mem, r.p0, r.p1, r.b0, r.b1) for r in ins.writes))


if __name__ == "__main__":
    raise SystemExit(main())
