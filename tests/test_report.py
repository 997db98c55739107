"""`nkigen report OUT` (nkigen.report): a self-contained HTML page, checked with an HTML parser."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli_helpers import run

from nkigen.report import band_text, render
from nkigen.report.svg import Point, Roof, roofline

MATMUL = """\
nkigen: 1
name: mm
sizes:
  M: {multiple_of: 128}
  K: {multiple_of: 128}
  N: {min: 1, max: 512}
inputs:
  a: {shape: [M, K], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] += a[m, k] * b[k, n]
tests:
  cases:
    - {M: 128, K: 256, N: 512}
"""

RELU = """\
nkigen: 1
name: relu_k
sizes:
  M: {multiple_of: 128}
  N: {min: 1, max: 1024}
inputs:
  a: {shape: [M, N], dtype: float32}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] = relu(a[m, n])
tests:
  cases:
    - {M: 128, N: 64}
"""


class Page(HTMLParser):
    """Collects the elements, attributes and text of a page; fails on unbalanced tags."""

    VOID = {"meta", "br", "img", "link", "input", "hr"}
    SVG_EMPTY = {"rect", "line", "circle", "polyline", "path"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if "id" in a:
            self.ids.add(str(a["id"]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    p.close()
    assert p.stack == [], p.stack
    return p


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from nkigen.library.build import BuildOptions, build

    d = tmp_path_factory.mktemp("rep")
    (d / "specs").mkdir()
    (d / "specs" / "mm.yaml").write_text(MATMUL)
    (d / "specs" / "relu_k.yaml").write_text(RELU)
    assert build(BuildOptions((str(d / "specs"),), str(d / "lib"), progress=False)).ok
    return d / "lib"


@pytest.fixture(scope="module")
def page(library):
    from nkigen.cli import main

    assert main(["report", str(library)]) == 0
    return library / "report.html"


def test_page_is_well_formed_and_self_contained(page):
    text = page.read_text()
    p = parse(text)
    assert p.all("html") and p.all("title")
    for tag, attrs in p.elements:     # nothing loaded from anywhere: no scripts, links, images
        assert tag not in ("script", "link", "img", "iframe"), tag
        for k, v in attrs.items():
            if k in ("src", "href") and v:
                assert not v.startswith(("http:", "https:", "//")), (tag, k, v)
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text


def test_every_kernel_has_figures_bars_and_a_trace(page, library):
    p = parse(page.read_text())
    manifest = json.loads((library / "manifest.json").read_text())
    names = [k["name"] for k in manifest["kernels"]]
    assert {f"k-{n}" for n in names} <= p.ids
    traces = [a["href"] for a in p.all("a") if a.get("class") == "trace"]
    assert sorted(set(traces)) == [f"traces/{n}.json" for n in sorted(names)]
    for n in names:
        doc = json.loads((page.parent / "traces" / f"{n}.json").read_text())
        assert doc["traceEvents"], n
    bars = p.all("rect", **{"class": "bar"})
    assert len(bars) == 5 * len(names)           # one bar per engine per kernel
    assert all(0 <= float(str(b["width"])) <= 320 for b in bars)
    text = " ".join(p.text)
    assert "not measurements" in text and "calibration band" in text and " us (+-" in text


def test_roofline_places_the_matmul_and_names_the_roofs(page):
    p = parse(page.read_text())
    dots = p.all("circle", **{"class": "kernel"})
    assert len(dots) == 1                          # relu_k has no TensorE FLOPs
    roofs = p.all("polyline", **{"class": "roof"})
    assert len(roofs) == 1                         # one target: trn2
    text = " ".join(p.text)
    assert "trn2: TensorE bf16 peak 78.6 TFLOP/s, HBM 362.5 GB/s per core" in text
    assert "Without TensorE FLOPs" in text and "relu_k" in text


def test_bound_and_latency_agree_with_the_manifest(library, page):
    from nkigen import load_library

    manifest = json.loads((library / "manifest.json").read_text())
    lat = {k["name"]: k["cases"][0]["latency_us"] for k in manifest["kernels"]}
    text = page.read_text()
    for name, v in lat.items():
        assert f"<td>{v:.3f}</td>" in text, name
    r = load_library(library)["mm"].report()
    assert f"<td>{r.bound}</td>" in text


def test_dots_sit_below_the_roofs():
    """A kernel at the ridge's intensity and peak FLOP/s lies on the roof; the SVG's y grows
    downwards, so no dot is drawn above (smaller y than) the roof line at its x."""
    roof = Roof("t", 100e12, 1e12)                 # ridge at 100 FLOP/B
    svg = roofline([Point("on", 100.0, 100e12, "#a"), Point("below", 10.0, 1e12, "#b")], [roof])
    p = parse(svg)
    (poly,) = p.all("polyline")
    pts = [tuple(map(float, xy.split(","))) for xy in str(poly["points"]).split()]
    ridge = pts[1]
    on, below = p.all("circle")
    assert (float(str(on["cx"])), float(str(on["cy"]))) == ridge
    assert float(str(below["cy"])) > ridge[1]


@pytest.mark.parametrize("case,entry,text", [
    ({"latency_band_us": [1.0, 2.5]}, {}, "1.000 to 2.500 us"),
    ({"band": {"lo": 3, "hi": 4}}, {}, "3.000 to 4.000 us"),
    ({}, {"calibration_band": "within 2x of the tutorials"}, "within 2x of the tutorials"),
    ({}, {}, "not recorded"),
    ({"latency_us": 10.0}, {}, "8.100 to 11.900 us (+-19 %)"),   # the model's band (BAND 0.19)
])
def test_band_degrades_gracefully(case, entry, text):
    assert band_text(case, entry) == text


def test_render_escapes_names():
    from nkigen.report import KernelFigures

    f = KernelFigures("<b>x", "doc & <i>", "trn2", "nki", (("M", 1),), "M1", 1.0, "dma",
                      (("dma", 1.0),), 0.0, 1.0, 0, 10, "not recorded", "spec",
                      "traces/<b>x.json")
    p = parse(render([f], "t"))
    assert not p.all("b") and not p.all("i")


def test_not_a_library(tmp_path, capsys):
    code, out, err = run(capsys, "report", str(tmp_path))
    assert code == 1 and "not a library" in err
    code, out, err = run(capsys, "report", str(tmp_path / "nope"))
    assert code == 2


def test_output_elsewhere(library, tmp_path, capsys):
    dest = tmp_path / "site" / "r.html"
    code, out, err = run(capsys, "report", str(library), "-o", str(dest))
    assert code == 0 and dest.is_file() and (dest.parent / "traces" / "mm.json").is_file()
    assert Path(out.split()[1]) == dest
