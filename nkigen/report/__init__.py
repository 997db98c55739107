"""Stage: report. A built kernel library -> one self-contained HTML page (and Perfetto traces).

    write_report(out, html=None) -> ReportFiles

Input: a library folder written by ``nkigen build`` (its ``manifest.json`` and ``kernels/``).
For each kernel, at its largest recorded test case, a cost-only simulation gives the modeled
latency, the engines' busy fractions, TensorE FLOPs and HBM bytes (:mod:`nkigen.sim.report`), and
its timeline is written as a Perfetto/Chrome trace ``traces/<kernel>.json`` next to the page.

Output: ``report.html`` (default ``OUT/report.html``): a roofline of every kernel with TensorE
work (arithmetic intensity = matmul FLOPs / HBM bytes, attained = FLOPs / modeled latency, the
target's roofs: bf16 TensorE peak and per-core HBM bandwidth from :mod:`nkigen.hw`), and per
kernel its latency, bound (busiest engine), engine utilisation bars, HFU/MBU, the calibration band
when the manifest records one (else "not recorded"), and a link to its trace. Inline SVG and
CSS only: the page loads nothing from the network. Every figure is a cost-model estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.report import svg

MODEL_NOTE = ("All figures are estimates of the nkigen cost model (from the simulator's "
              "instruction trace), not measurements.")


@dataclass(frozen=True)
class KernelFigures:
    name: str
    doc: str
    target: str
    dialect: str
    sizes: tuple[tuple[str, int], ...]
    case: str
    latency_us: float
    bound: str
    utilisation: tuple[tuple[str, float], ...]
    hfu: float
    mbu: float
    matmul_flops: int
    hbm_bytes: int
    band: str                 # the calibration band, as text, or "not recorded"
    schedule_by: str
    trace: str                # path of the trace relative to the page

    @property
    def intensity(self) -> float:
        return self.matmul_flops / self.hbm_bytes if self.hbm_bytes else 0.0

    @property
    def flops_per_s(self) -> float:
        return self.matmul_flops / (self.latency_us * 1e-6) if self.latency_us > 0 else 0.0


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    traces: tuple[Path, ...]
    kernels: tuple[KernelFigures, ...]


def band_text(case: dict, entry: dict) -> str:
    """The calibration band the manifest records for a case (any key naming a band, as
    ``[lo, hi]``, ``{lo, hi}``/``{low, high}`` or text), else the cost model's calibration band
    around the case's latency, else "not recorded"."""
    for where in (case, entry):
        for key in sorted(where):
            if "band" not in key.lower():
                continue
            v = where[key]
            if isinstance(v, (list, tuple)) and len(v) == 2 and all(
                    isinstance(x, (int, float)) for x in v):
                return f"{v[0]:.3f} to {v[1]:.3f} us"
            if isinstance(v, dict):
                lo = v.get("lo", v.get("low", v.get("min")))
                hi = v.get("hi", v.get("high", v.get("max")))
                if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
                    return f"{lo:.3f} to {hi:.3f} us"
            if isinstance(v, (str, int, float)):
                return str(v)
    lat = case.get("latency_us")
    if isinstance(lat, (int, float)) and not isinstance(lat, bool) and lat > 0:
        # none recorded: the cost model's own band (nkigen.sim.calibration.BAND, the worst miss
        # over the published anchors of benchmarks/bench_calibration.py)
        from nkigen.sim.calibration import BAND
        return f"{lat * (1 - BAND):.3f} to {lat * (1 + BAND):.3f} us (+-{round(100 * BAND)} %)"
    return "not recorded"


def gather(out: Path, trace_dir: Path, page_dir: Path) -> list[KernelFigures]:
    """Figures of every kernel of the library at ``out``; writes each kernel's trace."""
    from nkigen.api import bound_of, load_library
    from nkigen.library.bound import in_order
    from nkigen.library.readme import largest_case
    from nkigen.sim import perfetto

    lib = load_library(out)
    figs = []
    trace_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(lib):
        k = lib[name]
        case = largest_case(k.entry)
        sizes, rep = k.estimate(**case["sizes"])
        trace = perfetto.write_trace(rep, trace_dir / f"{name}.json")
        busy = {e: float(v) for e, v in rep.engine_busy.items()}
        util = in_order(busy)
        figs.append(KernelFigures(
            name, k.entry.get("doc") or "", k.target, k.entry.get("dialect", ""),
            tuple(sorted(sizes.items())), case["name"], float(rep.latency_us), bound_of(busy),
            util, float(rep.hfu), float(rep.mbu), int(rep.matmul_flops), int(rep.hbm_bytes),
            band_text(case, k.entry), (k.entry.get("schedule") or {}).get("chosen_by", "-"),
            trace.relative_to(page_dir).as_posix() if trace.is_relative_to(page_dir)
            else trace.resolve().as_uri()))
    return figs


CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 70em; }
table { border-collapse: collapse; }
td, th { padding: 2px 10px; text-align: left; white-space: nowrap; }
th { border-bottom: 1px solid #999; } tr:nth-child(even) td { background: #f4f4f4; }
section.kernel { border-top: 1px solid #ccc; margin-top: 1.5em; padding-top: 0.5em; }
.note { color: #666; font-size: 90%; } code { background: #f0f0f0; padding: 0 3px; }
"""


def render(figs: list[KernelFigures], title: str) -> str:
    """The page (deterministic text for the same figures)."""
    from nkigen.hw import TARGETS

    targets = sorted({f.target for f in figs})
    roofs = [svg.Roof(f"{t}: TensorE bf16 peak {TARGETS[t].tensor_peak_bf16_tflops:.1f} TFLOP/s, "
                      f"HBM {TARGETS[t].hbm_gbps_per_core:.1f} GB/s per core",
                      TARGETS[t].tensor_peak_bf16_tflops * 1e12,
                      TARGETS[t].hbm_gbps_per_core * 1e9) for t in targets if t in TARGETS]
    points = [svg.Point(f"{f.name}: {f.intensity:.2f} FLOP/B, {f.flops_per_s / 1e12:.2f} TFLOP/s",
                        f.intensity, f.flops_per_s, f"#k-{f.name}")
              for f in figs if f.matmul_flops > 0 and f.hbm_bytes > 0]
    h = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>",
         f"<h1>{escape(title)}</h1>",
         f"<p class=\"note\">{escape(MODEL_NOTE)} Each kernel is estimated at its largest test "
         "case. Traces open in the Perfetto UI (ui.perfetto.dev, <em>Open trace file</em>) or "
         "chrome://tracing.</p>",
         "<h2>Summary</h2>",
         "<table class=\"summary\">\n<tr><th>kernel</th><th>case</th><th>latency (us)</th>"
         "<th>bound</th><th>HFU</th><th>MBU</th><th>calibration band</th><th>trace</th></tr>"]
    for f in figs:
        h.append(f"<tr><td><a href=\"#k-{escape(f.name)}\">{escape(f.name)}</a></td>"
                 f"<td>{escape(f.case)}</td><td>{f.latency_us:.3f}</td><td>{escape(f.bound)}</td>"
                 f"<td>{100 * f.hfu:.1f} %</td><td>{100 * f.mbu:.1f} %</td>"
                 f"<td>{escape(f.band)}</td><td><a class=\"trace\" href=\"{escape(f.trace)}\">"
                 "trace</a></td></tr>")
    h.append("</table>")
    h.append("<h2>Roofline</h2>")
    if points:
        h.append(svg.roofline(points, roofs))
        h.append("<p class=\"note\">Dots: kernels with TensorE work (hover for figures, click "
                 "for details). Solid/dashed lines: the roofs of " + escape(", ".join(targets))
                 + ".</p>")
    else:
        h.append("<p>No kernel issues TensorE matmuls: nothing to place on a FLOP roofline.</p>")
    others = [f.name for f in figs if f.matmul_flops == 0]
    if others:
        h.append("<p class=\"note\">Without TensorE FLOPs (see their MBU and engine bars): "
                 + escape(", ".join(others)) + ".</p>")
    for f in figs:
        sizes = ", ".join(f"{k}={v}" for k, v in f.sizes)
        h.append(f"<section class=\"kernel\" id=\"k-{escape(f.name)}\">")
        h.append(f"<h3>{escape(f.name)}</h3>")
        if f.doc:
            h.append(f"<p>{escape(f.doc)}</p>")
        h.append("<table class=\"figures\">")
        rows = [("target / dialect", f"{f.target} / {f.dialect}"),
                ("case", f"{f.case} ({sizes})"), ("latency", f"{f.latency_us:.3f} us"),
                ("bound", f"{f.bound} (busiest engine)"),
                ("arithmetic intensity", f"{f.intensity:.3f} FLOP per HBM byte"),
                ("attained", f"{f.flops_per_s / 1e12:.3f} TFLOP/s"),
                ("HFU / MBU", f"{100 * f.hfu:.2f} % / {100 * f.mbu:.2f} %"),
                ("matmul FLOPs / HBM bytes", f"{f.matmul_flops:,} / {f.hbm_bytes:,}"),
                ("calibration band", f.band), ("schedule chosen by", f.schedule_by)]
        for k, v in rows:
            h.append(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>")
        h.append(f"<tr><th>trace</th><td><a class=\"trace\" href=\"{escape(f.trace)}\">"
                 f"{escape(f.trace)}</a></td></tr>")
        h.append("</table>")
        h.append(svg.bars(f.utilisation))
        h.append("</section>")
    h.append("</body>\n</html>\n")
    return "\n".join(h)


def check_page(page: Path) -> None:
    """Refuse a report destination that cannot be a file: empty, a folder, under a file."""
    if not str(page).strip() or str(page) in (".", ""):
        raise NkigenError(Diagnostic(Loc("<command line>"), "-o/--output", "empty path",
                                     repr(str(page)), "pass a file name such as report.html"))
    if page.is_dir():
        raise NkigenError(Diagnostic(Loc(str(page)), "-o/--output", "is a folder",
                                     fix=f"pass a file name, e.g. {page / 'report.html'}"))
    blocker = next((a for a in page.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise NkigenError(Diagnostic(Loc(str(page)), "-o/--output", "cannot create its folder",
                                     got=f"{blocker} is a file", fix="pass a path under a folder"))


def write_report(out: str | Path, html: str | Path | None = None) -> ReportFiles:
    """Write the HTML report of the library at ``out`` (default ``out/report.html``) and the
    traces (``traces/`` next to the page). Raises NkigenError for a folder that is no library."""
    from nkigen.commands.gen import write_atomic

    root = Path(out)
    page = Path(html) if html is not None else root / "report.html"
    if not (root / "manifest.json").is_file():
        raise NkigenError(Diagnostic(Loc(str(root)), "OUT", "no manifest.json: not a library "
                                     "built by nkigen", fix="pass the -o folder of nkigen build"))
    check_page(page)
    page_dir = page.parent if str(page.parent) else Path(".")
    trace_dir = page_dir / "traces"
    try:
        page_dir.mkdir(parents=True, exist_ok=True)
        figs = gather(root, trace_dir, page_dir)
    except OSError as e:     # the traces beside the page: an unwritable or odd destination
        where = e.filename if isinstance(e.filename, str) else str(trace_dir)
        raise NkigenError(Diagnostic(Loc(str(page)), "-o/--output", "cannot write the report "
                                     "and its traces", got=f"{where}: {e.strerror or e}",
                                     fix="pass a file in a writable folder")) from None
    write_atomic(page, render(figs, f"nkigen kernel library: {root.resolve().name}"),
                 "the report")
    return ReportFiles(page, tuple(trace_dir / f"{f.name}.json" for f in figs), tuple(figs))


__all__ = ["KernelFigures", "ReportFiles", "band_text", "render", "write_report"]
