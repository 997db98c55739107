"""The lint table: well-formed rows with sources, one test per rule, and (when the docs mirror is
present) the generated API modules equal to a fresh extraction."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from nkigen.lint import api_classic, api_nki, extract
from nkigen.lint.api import table
from nkigen.lint.report import table_counts
from nkigen.lint.rules import NAME_STATUS, RULES
from nkigen.lint.table import Api, Kind

TESTS = Path(__file__).with_name("test_lint.py").read_text()
MIRROR = os.environ.get("NKIGEN_SDK_MIRROR", "/work/.mirror/aws-neuron+aws-neuron-sdk/repo")
CITE = re.compile(r"^(S29|S25|SH) |^the API stubs|^Python")


def test_rules_are_well_formed_and_cited():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for r in RULES:
        assert r.apis and r.rule and r.fix and r.version, r.id
        assert CITE.search(r.source) or r.source.startswith("S29"), (r.id, r.source)


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_every_rule_has_its_test(rule):
    name = "test_" + rule.replace(".", "_").replace("-", "_")
    assert re.search(rf"^def {name}\(", TESTS, re.M), f"tests/test_lint.py lacks {name}"


def test_name_status_rows_carry_a_parsable_version():
    for s in NAME_STATUS:
        assert s.since() >= (0, 2) and s.source and s.use_instead
    assert {s.name for s in NAME_STATUS if s.since() == (0, 3)} >= {
        "affine_range", "sequential_range", "activation_reduce"}


def test_every_generated_row_cites_its_version_and_source():
    for mod, key, ver in ((api_nki, "S29 nki/api/", "nki 0.3"),
                          (api_classic, "S25 general/nki/api/", "neuronxcc.nki (SDK 2.25)")):
        rows = mod.SIGNATURES + mod.NAMES + mod.ALU_OPS + mod.ACT_FUNCS
        assert rows
        for r in rows:
            assert r.source.startswith(key) and r.version == ver, r


def test_known_facts_of_both_tables():
    nki, cls = table(Api.NKI), table(Api.CLASSIC)
    ts = nki.signature("nki.isa", "tensor_scalar")
    assert ts is not None and [p.name for p in ts.params[:4]] == ["dst", "data", "op0", "operand0"]
    cts = cls.signature("nki.isa", "tensor_scalar")
    assert cts is not None and cts.params[0].name == "data" and cts.var_keyword
    assert cts.param("dtype") is not None and cts.param("dtype").kind is Kind.KEYWORD_ONLY
    assert "divide" not in nki.alu and "divide" not in cls.alu
    assert cls.alu["power"].engines == ("gpsimd",)
    assert nki.alu["maximum"].reduce_legal and not nki.alu["equal"].reduce_legal
    assert "exp" in nki.act and "exp" in cls.act and "add" not in nki.act
    assert not nki.documented("nki.language", "arange")
    assert cls.documented("nki.language", "arange")
    assert nki.documented("nki", "isa") and cls.documented("nki", "trace")


def test_table_counts_add_up():
    counts = table_counts()
    assert set(counts) == {"nki", "neuronxcc"}
    assert counts["nki"]["signatures nki.isa"] == sum(
        s.module == "nki.isa" for s in api_nki.SIGNATURES)
    assert counts["nki"]["rules"] == sum(Api.NKI in r.apis for r in RULES)


@pytest.mark.skipif(not os.path.isdir(MIRROR), reason="aws-neuron-sdk mirror not present")
def test_generated_modules_match_a_fresh_extraction():
    for src in extract.SOURCES:
        fresh = extract.render(MIRROR, src)
        assert (Path(extract.__file__).parent / src.out).read_text() == fresh, src.out


def test_docs_lint_md_is_the_rules_output():
    from nkigen.lint.report import rules_markdown

    doc = Path(__file__).parent.parent / "docs" / "lint.md"
    assert doc.read_text() == rules_markdown(), "regenerate: nkigen lint --rules > docs/lint.md"
