"""The undocumented classic forms (nkigen.sim.classic.forms) in public classic kernels.

Usage: ``python benchmarks/classic_forms_public.py DIR [DIR ...] [-- PYTEST ARGS]``: runs the
pytest/unittest tests under each DIR with the nkigen simulator installed as ``neuronxcc`` (the
user profile: every form is a warning, nothing fails because of one) and prints the reports per
rule (distinct kernel line + call), with the test outcome counts. Make DIR from the public
mirrors, e.g.::

    git --git-dir=/work/.mirror/aws-neuron+aws-neuron-sdk/repo archive v2.25.0 general/nki \\
        | tar -x -C /tmp/pub/sdk
    git --git-dir=/work/.mirror/aws-neuron+nki-samples/repo archive 7af4e4d | tar -x -C /tmp/pub/ns
    python benchmarks/classic_forms_public.py /tmp/pub/sdk/general/nki/test /tmp/pub/ns/test/unit \\
        -- --simulation-only

Tests that fail for other reasons (an API the simulator lacks, torch not installed) are counted
as failed; their kernels' reports up to the failure are still listed.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Outcomes:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] += 1


def main(argv: list[str]) -> int:
    import pytest

    from nkigen import sim
    from nkigen.sim.classic import forms

    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    sites: dict[str, set[tuple[str, int, str]]] = defaultdict(set)
    for d in argv:
        out = _Outcomes()
        with sim.installed(), forms.recording() as log:
            pytest.main([d, "-q", "-p", "no:cacheprovider", "--rootdir", d, "-x" if False else
                         "--continue-on-collection-errors", *extra], plugins=[out])
        print(f"{d}: tests {dict(out.counts)}")
        for rule, path, line, what in log:
            sites[rule].add((path, line, what))
    for f in forms.FORMS:
        s = sites.get(f.id, set())
        print(f"{f.id}: {len(s)} call sites")
        for path, line, what in sorted(s):
            print(f"  {path}:{line}: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
