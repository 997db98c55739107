"""Stage: library (README). The manifest -> ``README.md`` text of the library.

Input: a validated manifest dict. Output: Markdown with one table row per kernel (name, doc,
signature, test cases, modeled latency of its largest case); deterministic.
"""

from __future__ import annotations

from nkigen.library import bound
from nkigen.library.suite import env


def signature(entry: dict) -> str:
    """``name(a: bfloat16[M, K], b: bfloat16[K, N]) -> c: bfloat16[M, N]``."""
    def t(x: dict) -> str:
        return f"{x['name']}: {x['dtype']}[{', '.join(x['shape'])}]"

    ins = ", ".join(t(x) for x in entry["signature"]["inputs"])
    outs = ", ".join(t(x) for x in entry["signature"]["outputs"])
    return f"{entry['name']}({ins}) -> {outs}"


def largest_case(entry: dict) -> dict:
    """The case with the most elements (sum of the sizes' product as a proxy), then latency;
    among the spec's own cases (a case the build derived to reach a kernel branch is chosen
    for coverage, not as a representative size), unless every case is derived."""
    def weight(c: dict) -> tuple:
        prod = 1
        for v in c["sizes"].values():
            prod *= v
        return (prod, c["latency_us"], c["name"])

    own = [c for c in entry["cases"] if "derived" not in c]
    return max(own or entry["cases"], key=weight)


def _cell(s: str) -> str:
    """``s`` as the text of one Markdown table cell: one line (newlines and other whitespace or
    control characters become spaces), backslashes and ``|`` escaped (a ``|`` would end the
    cell), ``<`` and ``&`` as entities (no HTML), ``` ` ``` escaped (no code span)."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(s))
    s = " ".join(s.split())
    for a, b in (("&", "&amp;"), ("<", "&lt;"), ("\\", "\\\\"), ("|", "\\|"), ("`", "\\`")):
        s = s.replace(a, b)
    return s


def _code(s: str) -> str:
    """``s`` as a code span cell: one line, ``|`` escaped, no backtick (it would end the span)."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(s))
    return " ".join(s.split()).replace("`", "'").replace("|", "\\|")


def render(manifest: dict) -> str:
    rows = []
    for e in manifest["kernels"]:
        big = largest_case(e)
        rows.append({
            "name": _code(e["name"]),
            "doc": _cell(e["doc"]),
            "signature": _code(signature(e)),
            "cases": _cell(", ".join(c["name"] + (" (derived)" if "derived" in c else "")
                                     for c in e["cases"])),
            "latency": f"{big['latency_us']:.3f} µs ({big['name']})" + (
                f", {big['bound']}-bound at {bound.pct(big['bound_util'])}"
                if "bound" in big else ""),
        })
    return env().get_template("README.md.j2").render(
        rows=rows, nkigen=manifest["nkigen"], dialect=manifest["dialect"],
        target=manifest["target"] or "per spec (default trn2)", note=manifest["cost_model"],
    )
