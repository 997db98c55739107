"""Benchmark: the cost model against every published NKI latency we could reproduce.

Stage: benchmark (simulate cost-only -> cost model -> tables). Each *anchor* is a published
device latency of a public NKI kernel; we run OUR OWN kernel with the same structure
(benchmarks/kernels/) on placeholders, cost-only, and compare. Printed:

1. model vs published per anchor, the ratio, and the engine/queue that bounds the model;
2. whether every published ordering of kernel versions is reproduced;
3. a global fit of the calibration parameters (``FIT_POINTS``) on all anchors, and
   leave-one-family-out: the parameters refitted without one family, then that family predicted;
4. the calibration band every printed latency carries (``nkigen.sim.calibration``), from the
   residuals of step 1;
5. with ``--dma-dispute``, the disputed trn1 DMA per-queue rate (27 GiB/s, S25 arch guide, vs
   17 B/ns, SH DMA bandwidth guide): the best fit with each (result recorded in nkigen/hw.py).

Anchors (all trn1, one NeuronCore, device latency including NEFF start-up):

* ``matmul`` -- S25 general/nki/tutorials/matrix_multiplication.rst table (nki-reference.md 5.2):
  [4096 x 8192] @ [8192 x 8192] bf16, four versions; kernels benchmarks/kernels/matmul_tutorial.py.
* ``mamba_v1``/``mamba_v2``/``mamba_v3`` -- S25 general/nki/tutorials/fused_mamba.rst (text and
  scaling table; nki-reference.md 6.3): fp32, batch 1, 16 states; v1 toy [c256, s512] and
  [c4096, s512]; v2 at c4096, s512 (1.61 ms in the text) and s1024..8192 (table); v3 at c4096,
  s512..8192 (table). Kernels benchmarks/kernels/mamba_tutorial.py.

Ordering only: the layernorm tutorial's NCLatency (S25 tutorials/layernorm.rst, trn1, [300,
1000] fp32: v1 2314 us, v2 1974 us p99). Three row tiles cannot take 2 ms on any engine model;
the absolute figure is dominated by what the model does not see (runtime overhead), so only the
ordering (v2 faster) is checked, with benchmarks/kernels/layernorm_tutorial.py.

    python benchmarks/bench_calibration.py [--quick] [--no-fit] [--dma-dispute] [--workers N]

``--quick`` drops the seq_len 3072/5120/6144/7168 rows of the scaling table; ``--no-fit`` prints
the table and orderings only; ``--dma-dispute`` adds item 5. Each anchor is simulated once
(cost-only) in a worker process, its schedule structure recorded (nkigen.sim.cost_replay), and the
cost model replayed at every fit point (exactly equal to a fresh schedule, far cheaper). Measured
with farm-bench: 66 s CPU with the fit, ~80 s adding --dma-dispute, over the 2 workers
(wall time: about half that on two free cores; 232 s on the shared, overloaded machine).
The figures are cost-model estimates, not measurements.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from nkigen import hw, sim
from nkigen.hw import Engine
from nkigen.sim import cost
from nkigen.sim.calibration import explain_bound
from nkigen.sim.trace import Instr, Mem, Region

KERNELS = Path(__file__).parent / "kernels"


@dataclasses.dataclass(frozen=True)
class Anchor:
    family: str
    name: str
    published_us: float
    source: str
    make: Callable[[], list]        # -> instruction trace (cost-only run)


def _matmul(name: str) -> Callable[[], list]:
    def make() -> list:
        ks = sim.load(KERNELS / "matmul_tutorial.py", "KERNELS")
        args = [sim.placeholder((8192, 4096), "bfloat16"),
                sim.placeholder((8192, 8192), "bfloat16")]
        return sim.run(ks[name], args, target="trn1", numerics=False, report=False).instrs
    return make


def _mamba(version: str, ch: int, seq: int, states: int = 16) -> Callable[[], list]:
    def make() -> list:
        ks = sim.load(KERNELS / "mamba_tutorial.py", "KERNELS")
        f32 = "float32"
        args = [sim.placeholder((1, ch, seq), f32), sim.placeholder((1, ch, seq), f32),
                sim.placeholder((ch, states), f32), sim.placeholder((1, states, seq), f32),
                sim.placeholder((1, states, seq), f32)]
        return sim.run(ks[version], args, target="trn1", numerics=False, report=False).instrs
    return make


_MM = "S25 tutorials/matrix_multiplication.rst table"
_FM = "S25 tutorials/fused_mamba.rst"
# seq_len -> (v2 ms, v3 ms), the scaling table of S25 fused_mamba.rst
SCALING = {1024: (4.4, 3.3), 2048: (8.9, 6.6), 3072: (13.1, 10.1), 4096: (17.6, 13.3),
           5120: (23.7, 17.3), 6144: (27.5, 19.6), 7168: (41.3, 24.2), 8192: (52.2, 27.8)}
QUICK_SKIP = {3072, 5120, 6144, 7168}


def anchors(quick: bool) -> list[Anchor]:
    out = [Anchor("matmul", f"matmul_{n}", ms * 1000, _MM, _matmul(n)) for n, ms in
           (("tiled", 51.80), ("hoisted", 42.96), ("block_free", 22.07),
            ("fully_blocked", 6.97))]
    out.append(Anchor("mamba_v1", "v1 c256 s512", 172.93, _FM + " text", _mamba("v1", 256, 512)))
    out.append(Anchor("mamba_v1", "v1 c4096 s512", 2340.0, _FM + " text",
                      _mamba("v1", 4096, 512)))
    out.append(Anchor("mamba_v2", "v2 c4096 s512", 1610.0, _FM + " text",
                      _mamba("v2", 4096, 512)))
    out.append(Anchor("mamba_v3", "v3 c4096 s512", 1600.0, _FM + " scaling table",
                      _mamba("v3", 4096, 512)))
    for seq, (v2, v3) in SCALING.items():
        if quick and seq in QUICK_SKIP:
            continue
        out.append(Anchor("mamba_v2", f"v2 c4096 s{seq}", v2 * 1000, _FM + " scaling table",
                          _mamba("v2", 4096, seq)))
        out.append(Anchor("mamba_v3", f"v3 c4096 s{seq}", v3 * 1000, _FM + " scaling table",
                          _mamba("v3", 4096, seq)))
    return out


def orderings(names: set[str]) -> list[tuple[str, str]]:
    """Published strict orderings (slower, faster) between anchors present."""
    pairs = [("matmul_tiled", "matmul_hoisted"), ("matmul_hoisted", "matmul_block_free"),
             ("matmul_block_free", "matmul_fully_blocked"),
             ("v1 c4096 s512", "v2 c4096 s512")]
    pairs += [(f"v2 c4096 s{s}", f"v3 c4096 s{s}") for s in SCALING]
    for v in ("v2", "v3"):
        seqs = [s for s in (512, *SCALING) if f"{v} c4096 s{s}" in names]
        pairs += [(f"{v} c4096 s{b}", f"{v} c4096 s{a}") for a, b in zip(seqs, seqs[1:])]
    return [(a, b) for a, b in pairs if a in names and b in names]


# Calibration parameters and the points the fit evaluates: a cross around the shipped values
# (each parameter varied alone). launch_us is fitted in closed form on a grid as it only shifts
# every latency. A point is (issue_cycles, dma_small_chunk_eff, spill_dma_queues, DMA GB/s per
# queue); rate None = the hw.py value (27 GiB/s).
Point = tuple[int, float, int, float | None]
CROSS = ((80, 0.25), (40, 0.25), (120, 0.25), (80, 0.22), (80, 0.28))
# spill_dma_queues only changes anchors that spill (exactly: no other op uses it), so each cross
# point is taken with every spill value at the cost of replaying the spilling anchors only. The
# a-priori value 16 (all queues, like the kernel's own DMAs) comes first: a fit on anchors that
# do not spill ties on it and keeps it (fit() keeps the earlier point on ties), so held-out
# spilling anchors are predicted with the prior, not with the value they were fitted to.
FIT_POINTS: tuple[Point, ...] = tuple((i, e, q, None) for q in (16, 8, 4) for i, e in CROSS)
LAUNCH_GRID = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
# the same with the SH 17 B/ns per-queue rate: efficiencies scaled so rate x eff spans the same
# products (0.25 x 25.6 B/ns HBM-capped queue = 0.376 x 17 B/ns)
# (spill queues refitted too: the spill rate is queues x per-queue rate)
FIT_POINTS_17: tuple[Point, ...] = tuple((80, e, q, 17.0) for q in (16, 8, 4)
                                         for e in (0.33, 0.376, 0.42))


def _params(point: Point) -> tuple[cost.CostParams, hw.Target]:
    p = dataclasses.replace(cost.DEFAULT_PARAMS, issue_cycles=point[0],
                            dma_small_chunk_eff=point[1], spill_dma_queues=point[2])
    t = hw.target("trn1")
    if point[3] is not None:
        t = dataclasses.replace(t, dma_gbps_per_queue=point[3])
    return p, t


SHIPPED: Point = (cost.DEFAULT_PARAMS.issue_cycles, cost.DEFAULT_PARAMS.dma_small_chunk_eff,
                  cost.DEFAULT_PARAMS.spill_dma_queues, None)


def _loss(core: dict[str, float], pub: dict[str, float], launch: float) -> float:
    return sum(math.log((core[n] + launch) / pub[n]) ** 2 for n in pub)


def _best_launch(core: dict[str, float], pub: dict[str, float]) -> float:
    return min(LAUNCH_GRID, key=lambda x: _loss(core, pub, x))


@dataclasses.dataclass(frozen=True)
class AnchorResult:
    """One anchor, simulated once: the shipped-parameter report and the kernel timeline
    latency (us, without launch) at every evaluated parameter point."""

    name: str
    device_us: float
    headline: str
    core: dict
    seconds: float


_JOBS: list = []       # (anchor, points) per job; read by forked workers


def _anchor_job(k: int) -> AnchorResult:
    """Worker: simulate anchor k once (cost-only trace), record its schedule's structure, and
    replay the cost model at every point (nkigen.sim.cost_replay; exact, tests/test_cost_replay.py).
    """
    from nkigen.sim import cost_replay
    a, points = _JOBS[k]
    t0 = time.perf_counter()
    trace = a.make()
    p, t = _params(SHIPPED)
    rec = cost_replay.record(trace, t, p)
    tl = rec.timeline(t, p)
    rep = cost.estimate(trace, t, p, timeline=tl)
    spills = any(ins.op.startswith("spill_") for ins in trace)
    core: dict = {SHIPPED: rep.latency_us}
    for pt in sorted(points, key=lambda q: q[2] != SHIPPED[2]):     # shipped spill value first
        if pt in core:
            continue
        base = (pt[0], pt[1], SHIPPED[2], pt[3])
        if not spills and pt[2] != SHIPPED[2] and base in core:
            core[pt] = core[base]
            continue
        pp, tt = _params(pt)
        core[pt] = rec.timeline(tt, pp).latency_ns / 1000
    return AnchorResult(a.name, rep.device_latency_us, explain_bound(rep).headline, core,
                        time.perf_counter() - t0)


def run_anchors(ans: list[Anchor], points: list[Point], workers: int) -> dict[str, AnchorResult]:
    """Every anchor simulated once and replayed at every point, biggest first over the workers."""
    _JOBS[:] = [(a, points) for a in ans]
    order = sorted(range(len(ans)), key=lambda k: -_work(ans[k]))
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            res = pool.map(_anchor_job, order, chunksize=1)
    else:
        res = [_anchor_job(k) for k in order]
    return {r.name: r for r in res}


def _work(a: Anchor) -> int:
    """Rough trace length (instructions) of an anchor, to start the longest first."""
    if a.family == "matmul":
        return 100_000
    seq = int(a.name.rsplit("s", 1)[-1])
    return 11 * seq if a.family == "mamba_v3" else 6_000


def cores_at(results: dict[str, AnchorResult], points: list[Point]) -> dict[Point, dict]:
    return {pt: {n: r.core[pt] for n, r in results.items()} for pt in points}


def fit(cores: dict[Point, dict[str, float]], pub: dict[str, float]
        ) -> tuple[Point, float, float]:
    """Best (point, launch_us, loss) over evaluated points, on the anchors in ``pub`` (ties: the
    earlier point)."""
    best = None
    for point, core in cores.items():
        launch = _best_launch(core, pub)
        loss = _loss(core, pub, launch)
        if best is None or loss < best[2] - 1e-12:
            best = (point, launch, loss)
    assert best is not None
    return best


def _layernorm_ordering() -> bool:
    """Ordering-only anchor: layernorm v1 slower than v2 (published 2314 vs 1974 us)."""
    ks = sim.load(KERNELS / "layernorm_tutorial.py", "KERNELS")
    f32 = "float32"
    args = [sim.placeholder((300, 1000), f32), sim.placeholder((1, 1000), f32),
            sim.placeholder((1, 1000), f32)]
    lat = {v: sim.run(ks[v], args, target="trn1", numerics=False).report.device_latency_us
           for v in ("v1", "v2")}
    ok = lat["v1"] > lat["v2"]
    print(f"  {'ok  ' if ok else 'MISS'} layernorm v1 > v2 [300, 1000] (ordering only; model "
          f"{lat['v1']:.0f} vs {lat['v2']:.0f} us, published NCLatency 2314 vs 1974 us: "
          f"{lat['v1'] / lat['v2']:.2f}x vs 1.17x)")
    return ok


def instruction_anchors(p: cost.CostParams) -> None:
    """Published per-instruction figures, on synthetic traces (not part of the fit)."""
    t1, t2 = hw.target("trn1"), hw.target("trn2")

    def act(i: int, free: int, dep: bool) -> Instr:
        src = (Region(i - 1, Mem.SBUF, 0, 128, 0, 4 * free),) if dep else ()
        return Instr(Engine.SCALAR, "activation", 0, reads=src,
                     writes=(Region(i, Mem.SBUF, 0, 128, 0, 4 * free),), partitions=128,
                     free=free)

    chain = [act(i + 1, 1, i > 0) for i in range(100)]
    tl = cost.schedule(chain, t1, p)
    ii = (tl.start[-1] - tl.start[0]) / 99
    print(f"  trn1 dependent 1-element ScalarE ops: {ii:.0f} ns apart; published ~189 ns "
          f"(264 cycles, S25 nki_perf_guide Opt #5a) -> ratio {ii / 189:.3f}")
    one = cost.schedule([act(1, 2048, False)], t1, p).latency_ns
    three = cost.schedule([act(1, 2048, False), act(2, 2048, True), act(3, 2048, True)],
                          t1, p).latency_ns
    print(f"  trn1 three dependent 2048-wide ScalarE ops vs one fused: {three / one:.2f}x; "
          f"published ~3x (S25 nki_perf_guide Opt #6)")
    ld = Instr(Engine.DMA, "dma_copy", 0, reads=(Region(1, Mem.HBM, 0, 1, 0, 32768),),
               writes=(Region(2, Mem.SBUF, 0, 1, 0, 32768),), partitions=1, nbytes=32768,
               hbm_bytes=32768, chunk_bytes=32768)
    _k, occ, _done = cost.dma_pieces(ld, t2, p)
    print(f"  trn2 one DMA queue, 32 KiB HBM->SBUF: {occ:.0f} ns busy; published 1416 ns "
          f"(SH nki/get-started/about/nki-dma-overview.rst profile) -> ratio {occ / 1416:.3f}")


def _label(pt: Point) -> str:
    return f"{pt[0]}/{pt[1]}/{pt[2]}" + ("" if pt[3] is None else f"@{pt[3]:g}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-fit", action="store_true")
    ap.add_argument("--workers", type=int, default=2, help="processes (fork)")
    ap.add_argument("--dma-dispute", action="store_true",
                    help="also fit with the 17 B/ns trn1 DMA rate (3 more replays per anchor)")
    args = ap.parse_args(argv)
    p = cost.DEFAULT_PARAMS
    t0 = time.perf_counter()
    ans = anchors(args.quick)
    points: list[Point] = [] if args.no_fit else list(FIT_POINTS)
    if not args.no_fit and args.dma_dispute:
        points += FIT_POINTS_17
    results = run_anchors(ans, points, args.workers)
    t_sim = time.perf_counter() - t0
    pub = {a.name: a.published_us for a in ans}
    fam = {a.name: a.family for a in ans}

    print("cost model v2 vs published NKI latencies (trn1; model = kernel timeline + launch_us "
          f"{p.launch_us:g} us)\n(modelled figures are estimates from the nkigen cost model, "
          "not measurements)\n")
    hdr = f"{'family':<9} {'anchor':<22} {'model us':>10} {'pub us':>10} {'ratio':>6}  bound"
    print(hdr)
    print("-" * (len(hdr) + 30))
    model: dict[str, float] = {}
    for a in ans:
        r = results[a.name]
        model[a.name] = r.device_us
        print(f"{a.family:<9} {a.name:<22} {model[a.name]:10.1f} {a.published_us:10.1f} "
              f"{model[a.name] / a.published_us:6.3f}  {r.headline}")
    ratios = [model[n] / pub[n] for n in model]
    worst = max(abs(r - 1) for r in ratios)
    within20 = sum(abs(r - 1) <= 0.20 for r in ratios)
    within10 = sum(abs(r - 1) <= 0.10 for r in ratios)
    rms = math.sqrt(sum(math.log(r) ** 2 for r in ratios) / len(ratios))
    print(f"\n{len(ratios)} anchors: {within20} within 20 %, {within10} within 10 %; worst "
          f"|ratio - 1| = {worst:.3f}; rms log ratio = {rms:.3f}")

    print("\npublished orderings (slower > faster):")
    ok_all = True
    for a, b in orderings(set(model)):
        ok = model[a] > model[b]
        ok_all &= ok
        print(f"  {'ok  ' if ok else 'MISS'} {a} > {b}   (model {model[a]:.0f} vs "
              f"{model[b]:.0f} us; published {pub[a]:.0f} vs {pub[b]:.0f})")
    ln = _layernorm_ordering()
    ok_all &= ln
    print(f"every published ordering reproduced: {ok_all}")
    print(f"(simulate + record + {len(points) or 0} replays per anchor: {t_sim:.1f} s wall, "
          f"{sum(r.seconds for r in results.values()):.1f} s in workers)")
    print("\nper-instruction anchors (synthetic traces, not fitted):")
    instruction_anchors(p)

    if not args.no_fit:
        cores = cores_at(results, list(FIT_POINTS))
        print("\nglobal fit: points (issue_cycles/dma_small_chunk_eff/spill_dma_queues) = "
              f"{[f'{i}/{e}' for i, e in CROSS]} x spill queues (16, 8, 4), launch_us in "
              f"{LAUNCH_GRID}; loss = sum of squared log ratios")
        for point, core in cores.items():
            launch = _best_launch(core, pub)
            worst_p = max(abs((core[n] + launch) / pub[n] - 1) for n in pub)
            print(f"  {_label(point):<12}: best launch {launch:g} us, loss "
                  f"{_loss(core, pub, launch):.4f}, worst |ratio - 1| {worst_p:.3f}")
        bp, bl, bloss = fit(cores, pub)
        print(f"  best: issue_cycles={bp[0]} dma_small_chunk_eff={bp[1]} spill_dma_queues={bp[2]} "
              f"launch_us={bl:g} (shipped {p.issue_cycles}/{p.dma_small_chunk_eff}/"
              f"{p.spill_dma_queues}/{p.launch_us:g})")
        print("\nleave-one-family-out (fit on the other families, predict the held-out one):")
        print(f"  {'held out':<10} {'fitted issue/eff/spillq/launch':<31} {'anchor':<22} "
              f"{'pred us':>9} {'pub us':>9} {'ratio':>6}")
        loo_worst = 0.0
        for f in sorted(set(fam.values()), key=lambda x: [a.family for a in ans].index(x)):
            train = {n: pub[n] for n in pub if fam[n] != f}
            fp, fl, _ = fit(cores, train)
            for n in pub:
                if fam[n] == f:
                    pred = cores[fp][n] + fl
                    loo_worst = max(loo_worst, abs(pred / pub[n] - 1))
                    print(f"  {f:<10} {_label(fp) + f'/{fl:g}':<31} {n:<22} {pred:9.1f} "
                          f"{pub[n]:9.1f} {pred / pub[n]:6.3f}")
        print(f"  worst held-out |ratio - 1| = {loo_worst:.3f}")
    if not args.no_fit and args.dma_dispute:
        print("\ndisputed trn1 DMA rate per queue (27 GiB/s, S25 arch guide, is capped by the "
              "per-queue HBM share 410/16 = 25.6 B/ns; 17 B/ns, SH DMA bandwidth guide):")
        cores = cores_at(results, list(FIT_POINTS))
        cores17 = cores_at(results, list(FIT_POINTS_17))
        for label, cs in (("27 GiB/s", cores), ("17 B/ns", cores17)):
            bp_, bl_, bloss_ = fit(cs, pub)
            print(f"  {label:<9} best loss {bloss_:.4f} at {_label(bp_)} launch={bl_:g}")
        b27, l27, _ = fit(cores, pub)
        b17, l17, _ = fit(cores17, pub)
        diff = sorted(pub, key=lambda n: -abs(math.log((cores17[b17][n] + l17)
                                                       / (cores[b27][n] + l27))))
        print("  anchors that decide (ratio at 27 GiB/s -> at 17 B/ns):")
        for n in diff[:5]:
            print(f"    {n:<22} {(cores[b27][n] + l27) / pub[n]:.3f} -> "
                  f"{(cores17[b17][n] + l17) / pub[n]:.3f}")
    print(f"\ntotal wall {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
