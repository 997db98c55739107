"""Output of the lint stage: findings as text or JSON, and the lint table's summary.

Stage: lint (report). Input: :class:`~nkigen.lint.checker.LintResult` s or the table. Output:
deterministic text (one ``file:line:col: lint[rule]: ...`` line per finding), a JSON document,
or the Markdown catalogue of the table (``nkigen lint --rules``).
"""

from __future__ import annotations

import json
from collections import Counter

from nkigen.lint.checker import LintResult
from nkigen.lint.table import Api


def text(results: list[LintResult]) -> str:
    return "".join(f"{f}\n" for r in results for f in r.findings)


def as_json(results: list[LintResult]) -> str:
    doc = {"files": [{"path": r.path, "api": r.api.value if r.api else None,
                      "findings": [f.as_dict() for f in r.findings]} for r in results]}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def table_counts() -> dict[str, dict[str, int]]:
    """Rows of the lint table per API and category."""
    from nkigen.lint import api_classic, api_nki
    from nkigen.lint.rules import EXTRA_NAMES, NAME_STATUS, RULES

    out: dict[str, dict[str, int]] = {}
    for api, mod in ((Api.NKI, api_nki), (Api.CLASSIC, api_classic)):
        c: Counter[str] = Counter()
        for s in mod.SIGNATURES:
            c[f"signatures {s.module}"] += 1
        c["names (dtypes, buffers, enums, classes, constants)"] = len(mod.NAMES) + sum(
            n.api is api for n in EXTRA_NAMES)
        c["ALU operators"] = len(mod.ALU_OPS)
        c["activation functions"] = len(mod.ACT_FUNCS)
        c["removed/deprecated names"] = sum(s.api is api for s in NAME_STATUS)
        c["rules"] = sum(api in r.apis for r in RULES)
        out[api.value] = dict(sorted(c.items()))
    return out


def rules_markdown() -> str:
    from nkigen.lint.rules import NAME_STATUS, RULES

    lines = ["# nkigen lint table", ""]
    for api, counts in table_counts().items():
        total = sum(counts.values())
        lines.append(f"## {api}: {total} rows")
        lines.extend(f"- {k}: {v}" for k, v in counts.items())
        lines.append("")
    lines += ["## Rules", "", "| id | api | level | rule | source | version |",
              "|---|---|---|---|---|---|"]
    for r in RULES:
        cells = [r.id, "/".join(a.value for a in r.apis), r.level.value, r.rule, r.source,
                 r.version]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Removed and deprecated names", "",
              "| api | name | level | use instead | source | version |",
              "|---|---|---|---|---|---|"]
    for s in NAME_STATUS:
        cells = [s.api.value, f"{s.module}.{s.name}", "removed" if s.level.value == "error"
                 else s.level.value, s.use_instead, s.source, s.version]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
