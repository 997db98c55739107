"""The conformance table is well formed: unique ids, cited sources, and every row's test exists."""

from __future__ import annotations

import ast
from pathlib import Path

from nkigen.sim.conformance import Status, all_rules, markdown

ROOT = Path(__file__).resolve().parent.parent


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_ids_unique_and_sources_cited():
    rules = all_rules()
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids))
    for r in rules:
        assert r.source.startswith(("SH ", "S25 ")), r.id
        assert r.rule and r.version, r.id
        if r.status is Status.UNMODELLED:
            assert r.note, f"{r.id}: an unmodelled rule says why"


def test_every_row_names_an_existing_test():
    cache: dict[Path, set[str]] = {}
    for r in all_rules():
        file, _, func = r.test.partition("::")
        path = ROOT / file
        assert path.is_file(), f"{r.id}: {file} missing"
        if path not in cache:           # (setdefault would parse the file for every row)
            cache[path] = _functions(path)
        funcs = cache[path]
        assert func.split("[")[0] in funcs, f"{r.id}: {r.test} missing"


def test_docs_table_is_current():
    doc = ROOT / "docs" / "conformance.md"
    assert doc.read_text(encoding="utf-8") == markdown(), (
        "docs/conformance.md is stale: python -m nkigen.sim.conformance > docs/conformance.md")
