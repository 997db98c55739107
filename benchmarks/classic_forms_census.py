"""Census of the undocumented classic forms (nkigen.sim.classic.forms) in generated kernels.

Usage: ``python benchmarks/classic_forms_census.py [SPEC.yaml ...]`` (default: every spec in
specs/). Each spec's classic (neuronxcc) kernel is generated and traced (cost-only, no numerics)
on every test case in the user profile; the script prints, per rule, the kernel call sites
reported (distinct kernel line + call) and the specs they are in, then the totals.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nkigen import sim, testdata  # noqa: E402
from nkigen.analysis import analyze  # noqa: E402
from nkigen.codegen import plan_kernel, render  # noqa: E402
from nkigen.frontend import load_spec  # noqa: E402
from nkigen.library.unit import kernel_args  # noqa: E402
from nkigen.sim.classic import forms  # noqa: E402

RULE = re.compile(r"^(.*?:\d+):\d+: warning: (.*?): .*\[([a-z.-]+); ")


def census(spec_path: Path, work: Path) -> dict[str, set[str]]:
    spec = load_spec(spec_path)
    target = spec.target or "trn2"
    src = render(plan_kernel(spec, analyze(spec), target, None, "neuronxcc"), "neuronxcc")
    kpath = work / f"{spec.name}.py"
    kpath.write_text(src)
    kernel = sim.load(str(kpath), spec.name)
    sites: dict[str, set[str]] = defaultdict(set)
    for case in testdata.cases(spec):
        args = kernel_args(spec, testdata.make_inputs(spec, case))
        res = sim.run(kernel, args, target, numerics=False, report=False)
        for w in res.warnings:
            m = RULE.match(w)
            if m:
                sites[m[3]].add(f"{Path(m[1]).name} {m[2]}")
    return sites


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "specs").glob("*.yaml"))
    per_rule: dict[str, dict[str, int]] = {f.id: {} for f in forms.FORMS}
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            for rule, s in census(p, Path(tmp)).items():
                per_rule[rule][p.stem] = len(s)
    for rule, specs in per_rule.items():
        total = sum(specs.values())
        print(f"{rule}: {total} call sites in {len(specs)} of {len(paths)} specs")
        for name, n in sorted(specs.items()):
            print(f"  {name}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
