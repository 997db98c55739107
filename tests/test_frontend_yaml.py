"""Front end, load stage: safe positioned YAML and schema validation on hostile input."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen.diagnostics import Loc, NkigenError
from nkigen.frontend import load_spec_text
from nkigen.frontend.yamlpos import MAX_DEPTH, decode, parse_yaml
from nkigen.schema import kernel_schema, schema_text


def one_error(text: str) -> str:
    with pytest.raises(NkigenError) as ei:
        parse_yaml(text, "f.yaml")
    (d,) = ei.value.diagnostics
    return str(d)


def test_positions_of_keys_values_and_items():
    doc = parse_yaml("a:\n  b: [1, 'x']\n  c: {d: 2}\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, "x"], "c": {"d": 2}}}
    assert doc.loc(("a", "b", 1)) == Loc("f.yaml", 2, 10)
    assert doc.key_loc(("a", "c")) == Loc("f.yaml", 3, 3)
    assert doc.loc(("a", "c", "d")) == Loc("f.yaml", 3, 10)
    assert doc.loc(("a", "zz", 3)) == doc.loc(("a",))       # nearest existing ancestor


def test_keys_are_always_strings_and_values_follow_yaml():
    doc = parse_yaml("on: yes\n1: 1.5\nx: 1e-3\ny: '12'\nz: ~\n", "f.yaml")
    assert doc.data == {"on": True, "1": 1.5, "x": 1e-3, "y": "12", "z": None}


@pytest.mark.parametrize("text,where,words", [
    ("a: 1\na: 2\n", "2:1", "duplicate key 'a'"),
    ("a: &x 1\nb: *x\n", "1:4", "anchors are not allowed"),
    ("b: *x\n", "1:4", "aliases are not allowed"),
    ("a: !!python/object/apply:os.system [ls]\n", "1:4", "tags are not allowed"),
    ("a: !custom 3\n", "1:4", "tags are not allowed"),
    ("a: [1, 2\n", "2:1", "YAML syntax error"),
    ("", "1:1", "spec file is empty"),
    ("# only a comment\n", "1:1", "spec file is empty"),
    ("[1, 2]\n", "1:1", "top level of a spec must be a mapping"),
    ("a: 1\n---\nb: 2\n", "2:1", "exactly one YAML document"),
    ("a: 1\nb: c\x07\n", "2:5", "control characters are not allowed"),
    ("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", "1:", "nesting is too deep"),
])
def test_rejections_are_located(text, where, words):
    msg = one_error(text)
    assert msg.startswith(f"f.yaml:{where}"), msg
    assert words in msg


def test_alias_bomb_is_rejected_without_expansion():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for p, q in zip("bcdefghij", "abcdefghi"):
        lines.append(f"{p}: &{p} [" + ",".join([f"*{q}"] * 10) + "]")
    msg = one_error("\n".join(lines) + "\n")
    assert "anchors are not allowed" in msg


def test_decode_rejects_binary_and_bad_utf8_with_positions():
    with pytest.raises(NkigenError, match=r"f.yaml:2:3: file is binary"):
        decode(b"a: 1\nb:\x00", "f.yaml")
    with pytest.raises(NkigenError, match=r"f.yaml:1:4: file is not valid UTF-8"):
        decode("é: ".encode() + b"\xff\xfe", "f.yaml")
    with pytest.raises(NkigenError, match="too large"):
        decode(b" " * (2 << 20), "f.yaml")
    assert decode(b"\xef\xbb\xbfa: 1", "f.yaml") == "a: 1"


def test_schema_is_valid_draft_2020_12_and_shipped():
    schema = kernel_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads(schema_text()) == schema
    assert schema["$schema"].endswith("2020-12/schema")


def _no_additional_properties_missing(node, path="$"):
    if isinstance(node, dict):
        if node.get("type") == "object" and "additionalProperties" not in node:
            raise AssertionError(f"{path}: object without additionalProperties")
        for k, v in node.items():
            _no_additional_properties_missing(v, f"{path}.{k}")
    elif isinstance(node, list):
        for n, v in enumerate(node):
            _no_additional_properties_missing(v, f"{path}[{n}]")


def test_every_object_in_the_schema_is_closed():
    _no_additional_properties_missing(kernel_schema())


def test_spec_language_example_validates():
    example = {
        "nkigen": 1, "name": "matmul_bias_gelu", "doc": "gelu(alpha * (a @ b) + bias)",
        "sizes": {"M": {"multiple_of": 128}, "K": {"multiple_of": 128},
                  "N": {"min": 1, "max": 16384}},
        "params": {"alpha": 0.5},
        "inputs": {"a": {"shape": ["M", "K"], "dtype": "bfloat16"},
                   "b": {"shape": ["K", "N"], "dtype": "bfloat16"},
                   "bias": {"shape": ["N"], "dtype": "float32"}},
        "outputs": {"c": {"shape": ["M", "N"], "dtype": "bfloat16"}},
        "temps": {"acc": {"shape": ["M", "N"], "dtype": "float32"}},
        "compute": ["acc[m, n] += a[m, k] * b[k, n]",
                    "c[m, n] = gelu(alpha * acc[m, n] + bias[n])"],
        "ranges": {"r": "R"},
        "schedule": {"tiles": {"m": 128, "n": 512, "k": 128}, "order": ["m", "n", "k"],
                     "block": {"n": 2}, "buffers": 2},
        "tests": {"cases": [{"M": 256, "K": 384, "N": 700}], "tolerance": {"rtol": 0.01,
                  "atol": 0.001}, "seed": 3,
                  "inputs": {"a": {"dist": "normal", "mean": 0, "std": 1},
                             "b": {"dist": "uniform", "low": 0.1, "high": 2}}},
    }
    jsonschema.Draft202012Validator(kernel_schema()).validate(example)
    jsonschema.Draft202012Validator(kernel_schema()).validate({**example, "schedule": "auto"})


YAMLISH = st.text(alphabet=st.sampled_from(list("abcMN:{}[]-&*!|>'\"#,. \n\t01\\%@`?")),
                  max_size=120)


@settings(max_examples=25, deadline=None)
@given(YAMLISH)
def test_arbitrary_text_gives_diagnostics_never_crashes(text):
    try:
        load_spec_text(text)
    except NkigenError as e:
        assert e.diagnostics
        assert all(d.loc is not None for d in e.diagnostics)


STATEMENTISH = st.text(alphabet=st.sampled_from(list("acmnk[]()+-*/=,. 012_sumexp%@")),
                       max_size=40)

SPEC = """\
nkigen: 1
name: k
sizes: {M: {}, K: {}}
inputs:
  a: {shape: [M, K], dtype: float32}
outputs:
  c: {shape: [M], dtype: float32}
compute:
  - STMT
"""


@settings(max_examples=25, deadline=None)
@given(STATEMENTISH)
def test_arbitrary_statements_give_located_diagnostics(stmt):
    text = SPEC.replace("STMT", json.dumps(stmt))
    try:
        load_spec_text(text)
    except NkigenError as e:
        for d in e.diagnostics:
            assert d.loc is not None and d.loc.line >= 1


VALID = """\
nkigen: 1
name: conv
sizes: {H: {min: 3}, R: {value: 3}, O: {value: "(H - R) // S + 1"}}
params: {S: 2, alpha: 0.5}
inputs:
  x: {shape: [H], dtype: float32}
  w: {shape: [R], dtype: bfloat16}
outputs:
  y: {shape: [O], dtype: float32}
temps:
  t: {shape: [O], dtype: float32}
compute:
  - t[o] += x[o * S + r] * w[r]
  - y[o] = gelu(alpha * t[o]) / sum(w[r], r)
schedule: {tiles: {o: 128}}
tests: {cases: [{H: 9}], seed: 1}
"""


@settings(max_examples=25, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(0, 3),
       st.sampled_from(list(" :,[]{}-#'\"xS0\n")))
def test_one_character_edits_of_a_valid_spec(pos, action, ch):
    """Delete, replace, insert or duplicate one character: the result loads or yields located
    diagnostics inside the file, never another exception."""
    edits = [VALID[:pos] + VALID[pos + 1:], VALID[:pos] + ch + VALID[pos + 1:],
             VALID[:pos] + ch + VALID[pos:], VALID[:pos] + VALID[pos] + VALID[pos:]]
    text = edits[action]
    try:
        load_spec_text(text, "e.yaml")
    except NkigenError as e:
        lines = text.count("\n") + 1
        for d in e.diagnostics:
            assert d.loc is not None and d.loc.path == "e.yaml"
            assert 1 <= d.loc.line <= lines, d


def test_the_fuzzed_spec_itself_is_valid():
    s = load_spec_text(VALID)
    assert [st.target for st in s.statements] == ["t", "y"]
