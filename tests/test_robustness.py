"""Robustness: bad input of any kind gives a located error and a non-zero exit, never a Python
traceback and never a half-written output.

Every spec-reading command (check, explain, gen, tune, build) is driven in-process through
``nkigen.cli.main`` with hostile files: missing, folders, empty, binary, non-UTF-8, huge, alias
bombs, Python tags, symlink loops, 10k-deep nesting, very long lines and names, odd paths. Exit
codes: 1 for a spec/input problem, 2 for a usage error (argparse).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from cli_helpers import relu_spec, run

HOSTILE = Path(__file__).parent / "hostile"
LOCATED = re.compile(r":\d+:\d+: ")

GOOD = relu_spec(doc="c = relu(a)")


def spec_argv(cmd: str, path: str | Path, tmp_path: Path) -> list[str]:
    """argv running ``cmd`` on one spec file (side outputs go under tmp_path)."""
    path = str(path)
    if cmd == "build":
        return ["build", path, "-o", str(tmp_path / "lib_out")]
    if cmd == "tune":
        return ["tune", path, "--no-cache"]
    if cmd == "gen":
        return ["gen", path, "-o", str(tmp_path / "gen_out" / "k.py")]
    return [cmd, path]


SPEC_COMMANDS = ["check", "explain", "gen", "tune", "build"]


def assert_no_output_written(tmp_path: Path) -> None:
    assert not (tmp_path / "gen_out" / "k.py").exists()
    gen_dir = tmp_path / "gen_out"
    if gen_dir.exists():
        assert list(gen_dir.iterdir()) == [], "gen left a partial file behind"
    assert not (tmp_path / "lib_out").exists(), "build wrote a library from a bad spec"


# ---- bad files, every command ------------------------------------------------------------------

def _deep(n: int) -> str:
    return GOOD.replace("doc: c = relu(a)", "doc: " + "[" * n + "]" * n)


def _deep_map(n: int) -> str:
    return GOOD.replace("doc: c = relu(a)", "doc: " + "{a: " * n + "1" + "}" * n)


def make_bad(kind: str, tmp_path: Path) -> tuple[Path, bool]:
    """A hostile spec path of the given kind and whether its error must carry line:col."""
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    p = d / "spec.yaml"
    located = False
    if kind == "missing":
        p = d / "nope.yaml"
    elif kind == "directory":
        p = d / "folder.yaml"
        p.mkdir()
    elif kind == "empty":
        p.write_text("")
    elif kind == "whitespace":
        p.write_text("\n   \n# only a comment\n")
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 8)
    elif kind == "nul_byte":
        p.write_bytes(GOOD.encode().replace(b"name: k", b"name: k\x00"))
    elif kind == "non_utf8":
        p.write_bytes(GOOD.encode().replace(b"c = relu(a)", b"caf\xe9 \xff\xfe"))
    elif kind == "utf16":
        p.write_bytes(GOOD.encode("utf-16"))
    elif kind == "huge":
        p.write_text(GOOD + "# " + "x" * (2 << 20) + "\n")
    elif kind == "long_line":
        p.write_text(GOOD.replace("doc: c = relu(a)", "doc: " + "y" * 200_000)
                     .replace("relu(a[m, n])", "relu(a[m, n])" + " + a[m, n]" * 20_000))
        located = True
    elif kind == "long_name":
        p.write_text(GOOD.replace("name: k", "name: " + "k" * 100_000))
        located = True
    elif kind == "long_tensor_name":
        p.write_text(GOOD.replace("a:", "a" * 5000 + ":").replace("a[", "a" * 5000 + "["))
        located = True
    elif kind == "deep_list":
        p.write_text(_deep(10_000))
        located = True
    elif kind == "deep_map":
        p.write_text(_deep_map(10_000))
        located = True
    elif kind == "deep_expr":
        p.write_text(GOOD.replace("relu(a[m, n])", "(" * 10_000 + "a[m, n]" + ")" * 10_000))
        located = True
    elif kind == "deep_calls":
        p.write_text(GOOD.replace("relu(a[m, n])", "relu(" * 3000 + "a[m, n]" + ")" * 3000))
        located = True
    elif kind == "long_sum":
        p.write_text(GOOD.replace("relu(a[m, n])", " + ".join(["a[m, n]"] * 20_000)))
        located = True
    elif kind == "symlink_loop":
        os.symlink(d / "loop_b.yaml", d / "loop_a.yaml")
        os.symlink(d / "loop_a.yaml", d / "loop_b.yaml")
        p = d / "loop_a.yaml"
    elif kind == "dangling_symlink":
        os.symlink(d / "gone.yaml", p)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind.startswith("/dev/"):
        p = Path(kind)
    elif kind.startswith("hostile/"):
        p = HOSTILE / kind.split("/", 1)[1]
        located = True
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p, located


BAD_KINDS = [
    "missing", "directory", "empty", "whitespace", "binary", "nul_byte", "non_utf8", "utf16",
    "huge", "long_line", "long_name", "long_tensor_name", "deep_list", "deep_map", "deep_expr",
    "deep_calls", "long_sum", "symlink_loop", "dangling_symlink", "fifo", "/dev/null",
    "/dev/zero",
    *(f"hostile/{p.name}" for p in sorted(HOSTILE.glob("*.yaml"))),
]


@pytest.mark.parametrize("cmd", SPEC_COMMANDS)
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file(kind, cmd, tmp_path, capsys):
    path, located = make_bad(kind, tmp_path)
    if kind == "directory" and cmd in ("check", "build"):
        pass  # a folder is a legal argument of check/build: an empty one is a usage error
    code, out, err = run(capsys, *spec_argv(cmd, path, tmp_path))
    if kind in ("long_line", "long_sum") and code == 0:
        return  # long but legal: accepted is fine (it must not crash)
    if kind == "missing":
        assert code == 2, err      # README: a missing path is a usage error, for every command
    elif kind == "directory" and cmd in ("check", "build"):
        assert code in (1, 2), err
    else:
        assert code == 1, (code, err)
    assert str(path) in err or os.path.basename(path) in err, err
    if located:
        assert LOCATED.search(err), err
    assert "internal error" not in err, err
    assert_no_output_written(tmp_path)
    assert not Path("/tmp/nkigen_pwned").exists()


def test_check_folder_with_hostile_entries(tmp_path, capsys):
    """A folder holding a symlink loop, a folder named *.yaml, a FIFO and a good spec: check
    reports each bad entry located, the good one ok, and never hangs on the FIFO."""
    d = tmp_path / "specs"
    d.mkdir()
    (d / "good.yaml").write_text(GOOD)
    (d / "dir.yaml").mkdir()
    (d / "dir.yaml" / "inner.yaml").write_text(GOOD.replace("relu(", "rleu("))
    os.symlink(d, d / "loop")
    os.symlink(d / "x.yaml", d / "x.yaml")
    os.mkfifo(d / "fifo.yaml")
    code, out, err = run(capsys, "check", str(d))
    assert code == 1
    assert f"ok  {d / 'good.yaml'}" in out
    assert str(d / "dir.yaml" / "inner.yaml") in err and LOCATED.search(err)
    assert str(d / "fifo.yaml") in err and str(d / "x.yaml") in err


def test_bad_file_messages_are_short(tmp_path, capsys):
    """A 100k-character name is reported, but the message does not echo all of it."""
    path, _ = make_bad("long_name", tmp_path)
    code, out, err = run(capsys, "check", str(path))
    assert code == 1
    assert len(err) < 5000, len(err)


# ---- odd but legal paths -----------------------------------------------------------------------

ODD_NAMES = ["with space.yaml", "ünïcødé-名前.yaml", "new\nline.yaml", "-dash.yaml",
             "semi;colon $(x) `y`.yaml", "'quote\".yaml"]


@pytest.mark.parametrize("fname", ODD_NAMES)
def test_odd_paths_work(fname, tmp_path, capsys):
    d = tmp_path / "dir with space"
    d.mkdir()
    p = d / fname
    p.write_text(GOOD)
    code, out, err = run(capsys, "check", "--", str(p))
    assert code == 0, err
    out_py = d / ("out " + fname.replace(".yaml", ".py"))
    code, out, err = run(capsys, "gen", str(p), "-o", str(out_py))
    assert code == 0, err
    compile(out_py.read_text(), str(out_py), "exec")
    code, out, err = run(capsys, "explain", str(p))
    assert code == 0, err


@pytest.mark.parametrize("fname", ODD_NAMES[:3])
def test_odd_paths_located_errors(fname, tmp_path, capsys):
    p = tmp_path / fname
    p.write_text(GOOD.replace("relu(", "rleu("))
    code, out, err = run(capsys, "check", str(p))
    assert code == 1
    from nkigen.diagnostics import one_line  # a diagnostic is one line: \n in a name escaped

    assert one_line(str(p)) in err and LOCATED.search(err), err
    assert len(err.strip().splitlines()) == 1, err


# ---- usage errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [], ["nope"], ["check", "--bogus"], ["gen"], ["gen", "a.yaml", "--target", "trn9"],
    ["build", "x.yaml"], ["tune", "x.yaml", "--top", "many"], ["tune", "x.yaml", "--top", "0"],
    ["sim"], ["sim", "k.py::k", "--seed", "x"],
    ["explain"], ["schema", "extra"], ["build", "x.yaml", "-o", "o", "-j", "two"],
])
def test_usage_errors_exit_2(argv, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, err)
    assert err


def test_check_no_paths_is_usage(capsys):
    code, out, err = run(capsys, "check")
    assert code == 2


# ---- spec content that is the wrong shape or type ----------------------------------------------

def _spec(**over) -> dict:
    d = yaml.safe_load(GOOD)
    for k, v in over.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def _write(tmp_path: Path, data, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def _tensor(shape, dtype="float32"):
    return {"shape": shape, "dtype": dtype}


BAD_CONTENT = {
    "nkigen_version_2": _spec(nkigen=2),
    "nkigen_true": _spec(nkigen=True),
    "name_list": _spec(name=["k"]),
    "name_int": _spec(name=12),
    "name_keyword": _spec(name="lambda"),
    "name_builtin": _spec(name="print"),
    "name_dunder": _spec(name="__import__"),
    "name_upper": _spec(name="Kernel"),
    "name_unicode": _spec(name="kérnel"),
    "name_empty": _spec(name=""),
    "name_dots": _spec(name="os.path"),
    "name_path": _spec(name="../../etc/passwd"),
    "sizes_list": _spec(sizes=["M", "N"]),
    "sizes_scalar": _spec(sizes="M"),
    "size_bool": _spec(sizes={"M": {"multiple_of": True}, "N": {}}),
    "size_negative": _spec(sizes={"M": {"multiple_of": -128}, "N": {}}),
    "size_zero_multiple": _spec(sizes={"M": {"multiple_of": 0}, "N": {}}),
    "size_float_frac": _spec(sizes={"M": {"multiple_of": 12.5}, "N": {}}),
    "size_string": _spec(sizes={"M": {"multiple_of": "128"}, "N": {}}),
    "size_huge": _spec(sizes={"M": {"multiple_of": 10 ** 400}, "N": {}}),
    "size_inf": _spec(sizes={"M": {"max": float("inf")}, "N": {}}),
    "size_nan": _spec(sizes={"M": {"max": float("nan")}, "N": {}}),
    "size_min_gt_max": _spec(sizes={"M": {"min": 10, "max": 1}, "N": {}}),
    "size_value_neg": _spec(sizes={"M": {"value": -128}, "N": {}}),
    "size_value_zero": _spec(sizes={"M": {"value": 0}, "N": {}}),
    "size_value_expr_evil": _spec(sizes={"M": {"value": "__import__('os').system('x')"},
                                         "N": {}}),
    "size_value_expr_pow": _spec(sizes={"M": {"value": "N ** 400"}, "N": {}}),
    "size_value_expr_huge": _spec(sizes={"M": {"value": "10" * 300}, "N": {}}),
    "size_value_self": _spec(sizes={"M": {"value": "M + 1"}, "N": {}}),
    "size_value_cycle": _spec(sizes={"M": {"value": "N"}, "N": {"value": "M"}}),
    "size_lower": _spec(sizes={"m": {}, "N": {}}),
    "size_unknown_key": _spec(sizes={"M": {"multiple": 128}, "N": {}}),
    "param_inf": _spec(params={"alpha": float("inf")},
                       compute=["c[m, n] = relu(alpha * a[m, n])"]),
    "param_nan": _spec(params={"alpha": float("nan")},
                       compute=["c[m, n] = relu(alpha * a[m, n])"]),
    "param_bool": _spec(params={"alpha": True}, compute=["c[m, n] = relu(alpha * a[m, n])"]),
    "param_string": _spec(params={"alpha": "0.5"}, compute=["c[m, n] = relu(alpha * a[m, n])"]),
    "param_list": _spec(params={"alpha": [1, 2]}, compute=["c[m, n] = relu(alpha * a[m, n])"]),
    "shape_zero": _spec(inputs={"a": _tensor(["M", 0])}),
    "shape_negative": _spec(inputs={"a": _tensor(["M", -4])}),
    "shape_float": _spec(inputs={"a": _tensor(["M", 128.0])}),
    "shape_bool": _spec(inputs={"a": _tensor(["M", True])}),
    "shape_empty": _spec(inputs={"a": _tensor([])}),
    "shape_rank6": _spec(inputs={"a": _tensor(["M", "N", 1, 1, 1, 1])}),
    "shape_scalar": _spec(inputs={"a": _tensor("M")}),
    "shape_null": _spec(inputs={"a": _tensor(None)}),
    "shape_nested": _spec(inputs={"a": _tensor([["M"], "N"])}),
    "shape_unknown_size": _spec(inputs={"a": _tensor(["M", "Q"])}),
    "shape_expr_evil": _spec(inputs={"a": _tensor(["M", "__import__('os').getpid()"])}),
    "shape_huge": _spec(inputs={"a": _tensor(["M", 10 ** 30])}),
    "dtype_unknown": _spec(inputs={"a": _tensor(["M", "N"], "float64")}),
    "dtype_int": _spec(inputs={"a": _tensor(["M", "N"], 32)}),
    "dtype_null": _spec(inputs={"a": _tensor(["M", "N"], None)}),
    "inputs_list": _spec(inputs=[{"a": _tensor(["M", "N"])}]),
    "outputs_empty": _spec(outputs={}),
    "outputs_missing": _spec(outputs=None),
    "compute_scalar": _spec(compute="c[m, n] = relu(a[m, n])"),
    "compute_empty": _spec(compute=[]),
    "compute_int": _spec(compute=[12]),
    "compute_dict": _spec(compute=[{"c[m, n]": "a[m, n]"}]),
    "compute_null": _spec(compute=[None]),
    "schedule_bad": _spec(schedule="fast"),
    "tiles_negative": _spec(schedule={"tiles": {"m": -128}}),
    "tiles_zero": _spec(schedule={"tiles": {"n": 0}}),
    "tiles_bool": _spec(schedule={"tiles": {"n": True}}),
    "tiles_huge": _spec(schedule={"tiles": {"n": 10 ** 12}}),
    "tiles_partition_over": _spec(schedule={"tiles": {"m": 256}}),
    "tiles_unknown_index": _spec(schedule={"tiles": {"q": 128}}),
    "order_unknown": _spec(schedule={"order": ["q", "m"]}),
    "order_dup": _spec(schedule={"order": ["m", "m"]}),
    "buffers_big": _spec(schedule={"buffers": 99}),
    "block_zero": _spec(schedule={"block": {"n": 0}}),
    "case_string": _spec(tests={"cases": [{"M": "128", "N": 8}]}),
    "case_bool": _spec(tests={"cases": [{"M": 128, "N": True}]}),
    "case_zero": _spec(tests={"cases": [{"M": 0, "N": 8}]}),
    "case_negative": _spec(tests={"cases": [{"M": -128, "N": 8}]}),
    "case_float": _spec(tests={"cases": [{"M": 128.5, "N": 8}]}),
    "case_unknown_size": _spec(tests={"cases": [{"M": 128, "N": 8, "Q": 1}]}),
    "case_missing_size": _spec(tests={"cases": [{"M": 128}]}),
    "seed_negative": _spec(tests={"cases": [{"M": 128, "N": 8}], "seed": -1}),
    "seed_float": _spec(tests={"cases": [{"M": 128, "N": 8}], "seed": 0.5}),
    "tolerance_negative": _spec(tests={"cases": [{"M": 128, "N": 8}],
                                       "tolerance": {"rtol": -1, "atol": 0}}),
    "tolerance_nan": _spec(tests={"cases": [{"M": 128, "N": 8}],
                                  "tolerance": {"rtol": float("nan")}}),
    "dist_bad": _spec(tests={"cases": [{"M": 128, "N": 8}],
                             "inputs": {"a": {"dist": "cauchy"}}}),
    "dist_std_negative": _spec(tests={"cases": [{"M": 128, "N": 8}],
                                      "inputs": {"a": {"dist": "normal", "std": -1}}}),
    "dist_uniform_reversed": _spec(tests={"cases": [{"M": 128, "N": 8}],
                                          "inputs": {"a": {"dist": "uniform", "low": 1,
                                                           "high": -1}}}),
    "dist_inf": _spec(tests={"cases": [{"M": 128, "N": 8}],
                             "inputs": {"a": {"dist": "normal", "mean": float("inf")}}}),
    "dist_unknown_input": _spec(tests={"cases": [{"M": 128, "N": 8}],
                                       "inputs": {"zz": {"dist": "normal"}}}),
    "target_bad": _spec(target="trn9"),
    "ranges_evil": _spec(ranges={"q": "__import__('os').getpid()"}),
    "collide_size_tensor": _spec(sizes={"M": {"multiple_of": 128}, "N": {}},
                                 params={"a": 1.0}),
    "unknown_top_key": _spec(extra_field=1),
    "value_deep_parens": _spec(sizes={"M": {"multiple_of": 128}, "N": {},
                                      "P": {"value": "(" * 5000 + "N" + ")" * 5000}}),
    "shape_deep_parens": _spec(inputs={"a": _tensor(["M", "(" * 5000 + "N" + ")" * 5000])}),
    "ranges_deep_parens": _spec(ranges={"q": "(" * 5000 + "N" + ")" * 5000}),
    "value_pow_tower": _spec(sizes={"M": {"multiple_of": 128}, "N": {},
                                    "P": {"value": "2**2**2**2**2**2"}}),
    "value_lambda": _spec(sizes={"M": {"multiple_of": 128}, "N": {},
                                 "P": {"value": "(lambda: 1)()"}}),
    "value_attribute": _spec(sizes={"M": {"multiple_of": 128}, "N": {},
                                    "P": {"value": "N.__class__"}}),
    "value_true_division": _spec(sizes={"M": {"multiple_of": 128}, "N": {},
                                        "P": {"value": "N / 2"}}),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENT))
def test_bad_content_check(case, tmp_path, capsys):
    p = _write(tmp_path, BAD_CONTENT[case])
    code, out, err = run(capsys, "check", str(p))
    assert code == 1, (code, out, err)
    assert str(p) in err, err
    assert LOCATED.search(err), err
    assert "internal error" not in err, err


@pytest.mark.parametrize("cmd", ["gen", "explain", "tune"])
@pytest.mark.parametrize("case", ["size_inf", "param_nan", "shape_zero", "tiles_huge",
                                  "size_value_expr_evil", "size_value_cycle",
                                  "dist_std_negative", "tolerance_nan"])
def test_bad_content_other_commands(case, cmd, tmp_path, capsys):
    p = _write(tmp_path, BAD_CONTENT[case])
    code, out, err = run(capsys, *spec_argv(cmd, p, tmp_path))
    assert code == 1, (code, out, err)
    assert str(p) in err and LOCATED.search(err), err
    assert_no_output_written(tmp_path)


# ---- hostile compute statements ----------------------------------------------------------------

HOSTILE_STMTS = {
    "import_call": "c[m, n] = __import__('os').system('x')",
    "import_in_index": "c[m, n] = a[__import__('os').getpid(), n]",
    "eval": "c[m, n] = eval('a[m, n]')",
    "lambda": "c[m, n] = (lambda q: q)(a[m, n])",
    "attribute": "c[m, n] = a.T[m, n]",
    "attribute_call": "c[m, n] = a[m, n].__class__",
    "slice": "c[m, n] = a[0:3, n]",
    "slice_step": "c[m, n] = a[m, ::2]",
    "ellipsis": "c[m, n] = a[...]",
    "starred": "c[m, n] = relu(*a[m, n])",
    "starred_index": "c[m, n] = a[*m]",
    "walrus": "c[m, n] = (q := a[m, n])",
    "fstring": "c[m, n] = f'{a[m, n]}'",
    "string": "c[m, n] = 'a'",
    "bytes": "c[m, n] = b'a'",
    "comparison_is": "c[m, n] = a[m, n] is None",
    "chained_comparison": "c[m, n] = 0 < a[m, n] < 1",
    "bool_op": "c[m, n] = a[m, n] and a[m, n]",
    "not": "c[m, n] = not a[m, n]",
    "if_expr": "c[m, n] = a[m, n] if a[m, n] else 0",
    "pow": "c[m, n] = a[m, n] ** 2",
    "mod": "c[m, n] = a[m, n] % 2",
    "floordiv": "c[m, n] = a[m, n] // 2",
    "matmul_op": "c[m, n] = a[m, n] @ a[m, n]",
    "bitops": "c[m, n] = a[m, n] & 1",
    "invert": "c[m, n] = ~a[m, n]",
    "call_keyword": "c[m, n] = relu(x=a[m, n])",
    "call_kwargs": "c[m, n] = maximum(a[m, n], **{})",
    "unknown_func": "c[m, n] = system(a[m, n])",
    "builtin_func": "c[m, n] = abs(a[m, n], 1)",
    "too_many_args": "c[m, n] = relu(a[m, n], a[m, n])",
    "too_few_args": "c[m, n] = maximum(a[m, n])",
    "nested_reduction_same_index": "c[m, n] = sum(sum(a[m, j], j) * a[m, j], j) + a[m, n]",
    "reduction_binds_lhs_index": "c[m, n] = sum(a[m, n], n)",
    "reduction_no_index": "c[m, n] = sum(a[m, n])",
    "reduction_expr_index": "c[m, n] = sum(a[m, n], n + 1)",
    "reduction_dup_index": "c[m, n] = a[m, n] + sum(a[m, j], j, j)",
    "huge_int_index": "c[m, n] = a[m + " + "9" * 400 + ", n]",
    "float_index": "c[m, n] = a[m + 0.5, n]",
    "nonaffine_index": "c[m, n] = a[m * n, n]",
    "floordiv_index": "c[m, n] = a[m // n, n]",
    "nan_name": "c[m, n] = a[m, n] * nan",
    "inf_name": "c[m, n] = a[m, n] * inf",
    "true_name": "c[m, n] = a[m, n] * True",
    "none": "c[m, n] = None",
    "self_read": "c[m, n] = c[m, n] + a[m, n]",
    "lhs_input": "a[m, n] = c[m, n]",
    "lhs_expr_index": "c[m + 1, n] = a[m, n]",
    "lhs_dup_index": "c[m, m] = a[m, m]",
    "lhs_no_subscript": "c = a",
    "lhs_attribute": "c.x[m, n] = a[m, n]",
    "lhs_tuple": "c[m, n], c[m, n] = a[m, n], a[m, n]",
    "augassign_mul": "c[m, n] *= a[m, n]",
    "annassign": "c[m, n]: int = a[m, n]",
    "two_statements": "c[m, n] = a[m, n]; import os",
    "import": "import os",
    "expression_only": "a[m, n]",
    "newline_injection": "c[m, n] = a[m, n]\nimport os",
    "jinja": "c[m, n] = {{ a }}[m, n]",
    "jinja_block": "c[m, n] = a[m, n] {% if 1 %}{% endif %}",
    "syntax_error": "c[m, n] = a[m, n +",
    "u2028": "c[m, n] = a[m, n]\u2028+ a[m, n]",
    "nul": "c[m, n] = a[m, n]\x00",
    "index_keyword": "c[m, n] = a[m, lambda]",
    "index_dunder": "c[m, __x__] = a[m, __x__]",
    "wrong_rank": "c[m, n] = a[m]",
    "unknown_tensor": "c[m, n] = zz[m, n]",
    "tensor_as_number": "c[m, n] = a * 2",
    "index_as_number": "c[m, n] = a[m, n] * m",
    "deep_unary": "c[m, n] = " + "-" * 5000 + "a[m, n]",
    "empty": "",
    "whitespace": "   ",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_STMTS))
def test_hostile_statement(case, tmp_path, capsys):
    p = _write(tmp_path, _spec(compute=[HOSTILE_STMTS[case]]))
    code, out, err = run(capsys, "check", str(p))
    assert code == 1, (code, out, err)
    assert str(p) in err and LOCATED.search(err), err
    assert "internal error" not in err, err
    code, out, err = run(capsys, *spec_argv("gen", p, tmp_path))
    assert code == 1, (code, out, err)
    assert_no_output_written(tmp_path)
    assert not Path("/tmp/nkigen_pwned").exists()


# ---- numbers no stage can handle: check must reject them, located ---------------------------

OVERFLOW = {
    "const_int_10e400": _spec(compute=["c[m, n] = a[m, n] * " + "9" * 400]),
    "const_float_1e400": _spec(compute=["c[m, n] = a[m, n] * 1e400"]),
    "param_10e400": _spec(params={"alpha": 10 ** 400}, compute=["c[m, n] = relu(alpha * a[m, n])"]),
    "case_10e32": _spec(tests={"cases": [{"M": 128 * 10 ** 30, "N": 8}]}),
}


@pytest.mark.parametrize("data", [OVERFLOW[k] for k in sorted(OVERFLOW)], ids=sorted(OVERFLOW))
def test_unrepresentable_numbers_rejected_by_check(data, tmp_path, capsys):
    p = _write(tmp_path, data)
    code, out, err = run(capsys, "check", str(p))
    assert code == 1, (code, out, err)
    assert str(p) in err and LOCATED.search(err), err
    assert "internal error" not in err, err


def test_gen_of_infinite_constant_has_no_traceback(tmp_path, capsys):
    """Whatever check decides, gen must not crash with a traceback on `* 1e400`."""
    p = _write(tmp_path, _spec(compute=["c[m, n] = a[m, n] * 1e400"]))
    code, out, err = run(capsys, "gen", str(p))
    assert code == 1, (code, err)


@pytest.mark.parametrize("cmd", [
    "explain", "tune",
    "gen",
])
def test_internal_errors_are_not_tracebacks(cmd, tmp_path, capsys):
    p = _write(tmp_path, _spec(compute=["c[m, n] = a[m, n] * " + "9" * 400]))
    code, out, err = run(capsys, *spec_argv(cmd, p, tmp_path))
    assert code == 1 and str(p) in err
