"""`nkigen check` extras (nkigen.analysis.checktime): memory budget of test cases, duplicate kernel
names, and warnings (dead stores, unused inputs, `+=` with nothing to sum), located."""

from __future__ import annotations

import re

import pytest
from cli_helpers import relu_spec, run

from nkigen.analysis.checktime import CASE_BUDGET_BYTES, case_memory_diagnostics, warnings_of
from nkigen.frontend import load_spec_text

BASE = """\
nkigen: 1
name: w
sizes:
  M: {{multiple_of: 128}}
  N: {{min: 1}}
inputs:
  a: {{shape: [M, N], dtype: float32}}
{extra_inputs}outputs:
  c: {{shape: [M, N], dtype: float32}}
temps:
  t: {{shape: [M, N], dtype: float32}}
{ranges}compute:
{compute}tests:
  cases:
    - {{M: 128, N: 8}}
"""


def spec_text(compute: list[str], extra_inputs: str = "", ranges: str = "") -> str:
    body = "".join(f"  - {c}\n" for c in compute)
    return BASE.format(compute=body, extra_inputs=extra_inputs, ranges=ranges)


def warnings(text: str) -> list[str]:
    return [str(w) for w in warnings_of(load_spec_text(text, "w.yaml"))]


LOCATED_WARNING = re.compile(r"^w\.yaml:\d+:\d+: warning: ")


def test_dead_store_is_a_located_warning():
    ws = warnings(spec_text(["t[m, n] = relu(a[m, n])", "t[m, n] = exp(a[m, n])",
                             "c[m, n] = t[m, n]"]))
    assert len(ws) == 1 and LOCATED_WARNING.match(ws[0]), ws
    assert "w.yaml:13:5: warning: compute[0]: dead store: t is written again by compute[1]" \
        in ws[0]


@pytest.mark.parametrize("compute", [
    ["t[m, n] = relu(a[m, n])", "c[m, n] = t[m, n]", "t[m, n] = exp(a[m, n])",
     "c[m, n] = c[m, n] + t[m, n]"],                      # read between the two writes
    ["t[m, n] = relu(a[m, n])", "t[m, n] = t[m, n] * 2.0", "c[m, n] = t[m, n]"],  # reads itself
    ["t[m, n] = relu(a[m, n])", "t[m, n] += a[m, n]", "c[m, n] = t[m, n]"],  # += reads t
])
def test_no_dead_store_when_read_in_between(compute):
    assert warnings(spec_text(compute)) == []


def test_no_dead_store_warning_under_ranges():
    text = spec_text(["t[m, n] = relu(a[m, n])", "t[m, n] = exp(a[m, n])", "c[m, n] = t[m, n]"],
                     ranges='ranges:\n  n: "N"\n')
    assert not any("dead store" in w for w in warnings(text))


def test_unused_input_warning():
    ws = warnings(spec_text(["t[m, n] = relu(a[m, n])", "c[m, n] = t[m, n]"],
                            extra_inputs="  b: {shape: [M, N], dtype: float32}\n"))
    assert len(ws) == 1 and "w.yaml:8:3: warning: inputs.b: input 'b' is never read" in ws[0]


def test_accumulate_with_nothing_to_sum():
    ws = warnings(spec_text(["t[m, n] += relu(a[m, n])", "c[m, n] = t[m, n]"]))
    assert len(ws) == 1 and "'+=' with nothing to sum" in ws[0] and "use '='" in ws[0]
    # onto an earlier value: a real accumulation
    assert warnings(spec_text(["t[m, n] = a[m, n]", "t[m, n] += a[m, n]",
                               "c[m, n] = t[m, n]"])) == []


def test_shipped_specs_have_no_warnings(capsys):
    code, out, err = run(capsys, "check", "-q", "specs")
    assert code == 0 and "warning" not in err, err


def test_warnings_do_not_fail_check(tmp_path, capsys):
    p = tmp_path / "w.yaml"
    p.write_text(spec_text(["t[m, n] += relu(a[m, n])", "c[m, n] = t[m, n]"]))
    code, out, err = run(capsys, "check", str(p))
    assert code == 0 and out == f"ok  {p}\n"
    assert f"{p}:13:5: warning: compute[0]:" in err


def _case(m: int, n: int) -> str:
    return spec_text(["c[m, n] = relu(a[m, n])"]).replace("t: {shape: [M, N], dtype: float32}",
                                                          "t: {shape: [1], dtype: float32}") \
        .replace("temps:\n  t: {shape: [1], dtype: float32}\n", "") \
        .replace("{M: 128, N: 8}", f"{{M: {m}, N: {n}}}")


def test_case_memory_budget_at_its_boundary():
    # a and c: 2 tensors x 4 bytes x M x N; M*N = 2**27 is exactly the budget
    assert CASE_BUDGET_BYTES == 2 * 4 * 8192 * 16384
    assert case_memory_diagnostics(load_spec_text(_case(8192, 16384))) == []
    over = case_memory_diagnostics(load_spec_text(_case(8192, 16385)))
    assert len(over) == 1 and over[0].field == "tests.cases[0]"
    assert f"{2 * 4 * 8192 * 16385:,} bytes" in over[0].rule


def test_check_reports_a_huge_case_located_not_memoryerror(tmp_path, capsys):
    p = tmp_path / "huge.yaml"
    p.write_text(_case(1 << 20, 1 << 20))
    code, out, err = run(capsys, "check", str(p))
    assert code == 1 and "MemoryError" not in err and "internal error" not in err
    assert re.match(rf"{re.escape(str(p))}:\d+:\d+: tests\.cases\[0\]: the case's tensors need "
                    r"8,796,093,022,208 bytes", err), err


def test_build_refuses_a_huge_case_before_allocating(tmp_path, capsys):
    p = tmp_path / "huge.yaml"
    p.write_text(_case(8192, 16385) + "schedule:\n  tiles: {m: 128}\n")
    code, out, err = run(capsys, "build", str(p), "-o", str(tmp_path / "lib"))
    assert code == 1 and "over the 1,073,741,824 bytes" in err and "MemoryError" not in err


def test_duplicate_kernel_names_across_a_folder(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "one.yaml").write_text(relu_spec("same"))
    (tmp_path / "sub" / "two.yaml").write_text(relu_spec("same"))
    (tmp_path / "other.yaml").write_text(relu_spec("other"))
    code, out, err = run(capsys, "check", str(tmp_path))
    assert code == 1
    assert out.splitlines() == [f"ok  {tmp_path / 'other.yaml'}"]
    assert f"{tmp_path / 'one.yaml'}:2:7: name: kernel names must be unique in a library (got " \
           f"'same' is also defined by {tmp_path / 'sub' / 'two.yaml'})" in err
    assert f"{tmp_path / 'sub' / 'two.yaml'}:2:7: name:" in err
    assert err.splitlines()[-1] == "3 specs: 1 ok, 2 with problems"
