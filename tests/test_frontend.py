"""Front end: spec text -> frozen IR, compared node by node with hand-built expectations."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
import sympy

from nkigen.diagnostics import Loc, NkigenError
from nkigen.dtypes import DType
from nkigen.frontend import load_spec, load_spec_text
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    Const,
    Func,
    Neg,
    ParamRef,
    Reduce,
    ReduceKind,
    Role,
    Schedule,
    SizeDecl,
    SizeRef,
    Statement,
    TensorDecl,
    index_symbol,
    size_symbol,
)

i, j, k, m, n, o, r = (index_symbol(x) for x in "ijkmnor")
H, K, M, N, R = (size_symbol(x) for x in "HKMNR")


def spec_of(text: str, path: str = "t.yaml"):
    return load_spec_text(textwrap.dedent(text), path)


MATMUL = """\
nkigen: 1
name: matmul
sizes:
  M: {multiple_of: 128}
  K: {multiple_of: 128}
  N: {min: 1, max: 16384}
params:
  alpha: 0.5
inputs:
  a: {shape: [M, K], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: float32}
temps:
  acc: {shape: [M, N], dtype: float32}
compute:
  - acc[m, n] += a[m, k] * b[k, n]
  - "c[m, n] = -(alpha * acc[m, n]) / N + 1"
tests:
  cases:
    - {N: 700, M: 256, K: 384}
  seed: 7
  tolerance: {rtol: 0.01}
  inputs:
    a: {dist: uniform, low: -1, high: 2}
"""


def test_matmul_ir():
    s = spec_of(MATMUL)
    assert s.name == "matmul" and s.doc == "" and s.target is None
    assert s.sizes == (SizeDecl("M", 128), SizeDecl("K", 128), SizeDecl("N", None, 1, 16384))
    assert s.inputs == (
        TensorDecl("a", Role.INPUT, (M, K), DType.bfloat16),
        TensorDecl("b", Role.INPUT, (K, N), DType.bfloat16),
    )
    assert s.outputs == (TensorDecl("c", Role.OUTPUT, (M, N), DType.float32),)
    assert s.temps == (TensorDecl("acc", Role.TEMP, (M, N), DType.float32),)
    st0, st1 = s.statements
    assert st0 == Statement(
        position=0, target="acc", lhs=("m", "n"), op=AssignOp.ACCUMULATE,
        rhs=BinOp(BinOpKind.MUL, Access("a", (m, k)), Access("b", (k, n))),
        sum_indices=("k",), text="acc[m, n] += a[m, k] * b[k, n]",
    )
    assert st1.op is AssignOp.ASSIGN and st1.sum_indices == ()
    assert st1.rhs == BinOp(
        BinOpKind.ADD,
        BinOp(BinOpKind.DIV, Neg(BinOp(BinOpKind.MUL, ParamRef("alpha", 0.5),
                                       Access("acc", (m, n)))), SizeRef("N")),
        Const(1.0),
    )
    assert s.schedule == Schedule(auto=True)
    assert s.tests.cases == ((("K", 384), ("M", 256), ("N", 700)),)
    assert s.tests.seed == 7 and s.tests.rtol == 0.01 and s.tests.atol is None
    assert s.tests.dist("a").a == -1.0 and s.tests.dist("a").b == 2.0
    assert s.tests.dist("b").a == 0.0 and s.tests.dist("b").b == 1.0


def test_matmul_locations():
    s = spec_of(MATMUL, "specs/mm.yaml")
    st0, st1 = s.statements
    assert st0.loc == Loc("specs/mm.yaml", 17, 5)
    # plain scalar: columns inside the statement are exact
    assert st0.rhs.lhs.loc == Loc("specs/mm.yaml", 17, 18)
    assert st0.rhs.rhs.loc == Loc("specs/mm.yaml", 17, 28)
    # double-quoted scalar: offset by the quote
    acc = st1.rhs.lhs.lhs.operand.rhs
    assert acc.loc == Loc("specs/mm.yaml", 18, 26)
    assert s.size("N").loc == Loc("specs/mm.yaml", 6, 3)
    assert s.loc_of("tests.cases[0].M") == Loc("specs/mm.yaml", 21, 19)


def test_path_and_sha256(tmp_path):
    p = tmp_path / "mm.yaml"
    p.write_text(MATMUL)
    s = load_spec(p)
    assert s.path == str(p)
    assert s.sha256 == hashlib.sha256(MATMUL.encode()).hexdigest()
    assert load_spec(str(p)) == s


CONV = """\
nkigen: 1
name: conv1d
sizes:
  H: {min: 3}
  R: {value: 3}
  O: {value: "(H - R) // S + 1"}
params:
  S: 2
inputs:
  x: {shape: [H], dtype: float32}
  w: {shape: [R], dtype: float32}
outputs:
  y: {shape: [O], dtype: float32}
compute:
  - y[o] += x[o * S + r] * w[r]
schedule: auto
"""


def test_conv1d_stride_param_is_substituted():
    s = spec_of(CONV)
    (st,) = s.statements
    assert st.rhs == BinOp(BinOpKind.MUL, Access("x", (2 * o + r,)), Access("w", (r,)))
    assert st.sum_indices == ("r",)
    assert s.size("R").value == 3
    assert s.size("O").value == sympy.floor((H - R) / 2) + 1
    assert s.size("O").derived and not s.size("H").derived
    assert [z.name for z in s.free_sizes] == ["H"]
    assert s.schedule.auto


def test_reduction_statement():
    s = spec_of("""\
        nkigen: 1
        name: row_mean
        sizes: {P: {}, F: {}}
        inputs:
          x: {shape: [P, F], dtype: float32}
        outputs:
          y: {shape: [P], dtype: float32}
        compute:
          - y[i] = mean(x[i, j], j) + max(exp(x[i, j]), j)
        """)
    (st,) = s.statements
    assert st.rhs == BinOp(
        BinOpKind.ADD,
        Reduce(ReduceKind.MEAN, Access("x", (i, j)), ("j",)),
        Reduce(ReduceKind.MAX, Call(Func.EXP, (Access("x", (i, j)),)), ("j",)),
    )
    assert st.sum_indices == ()


def test_accumulate_sums_only_free_indices_outside_reductions():
    s = spec_of("""\
        nkigen: 1
        name: k
        sizes: {A: {}, B: {}, C: {}}
        inputs:
          x: {shape: [A, B, C], dtype: float32}
        outputs:
          y: {shape: [A], dtype: float32}
        compute:
          - y[a] += sum(x[a, b, c], c) * maximum(x[a, b, 0], 0.0)
        """)
    assert s.statements[0].sum_indices == ("b",)


def test_shape_and_value_expressions():
    s = spec_of("""\
        nkigen: 1
        name: up
        sizes:
          H: {multiple_of: 2}
          W: {value: "H * 2 + P"}
        params: {P: 4}
        inputs:
          x: {shape: [H, 3], dtype: float16}
        outputs:
          y: {shape: ["H * 2", "(H + 1) // 2"], dtype: float16}
        compute:
          - y[h, w] = x[h // 1 * 0 + h, 0] + W
        ranges: {w: "(H + 1) // 2"}
        """.replace("h // 1 * 0 + h", "h"))
    assert s.inputs[0].shape == (H, 3)
    assert s.outputs[0].shape == (2 * H, sympy.floor((H + 1) / 2))
    assert s.size("W").value == 2 * H + 4
    assert s.ranges == (("w", sympy.floor((H + 1) / 2)),)
    assert s.statements[0].rhs == BinOp(BinOpKind.ADD, Access("x", (index_symbol("h"), 0)),
                                        SizeRef("W"))


def test_schedule_hints_and_yaml12_numbers():
    s = spec_of("""\
        nkigen: 1
        name: k
        sizes: {M: {}}
        params: {eps: 1e-5}
        inputs:
          a: {shape: [M], dtype: float32}
        outputs:
          c: {shape: [M], dtype: float32}
        compute:
          - c[m] = a[m] + eps
        schedule: {tiles: {m: 128}, order: [m], block: {m: 2}, buffers: 3}
        """)
    assert s.params[0].value == 1e-5
    assert s.schedule == Schedule(auto=False, tiles=(("m", 128),), order=("m",),
                                  block=(("m", 2),), buffers=3)


def test_errors_carry_every_diagnostic():
    with pytest.raises(NkigenError) as ei:
        spec_of(MATMUL.replace("acc[m, n] += a[m, k]", "acc[m, n] += aa[m, k]")
                .replace("= -(alpha", "= -(alhpa"))
    msgs = [str(d) for d in ei.value.diagnostics]
    assert len(msgs) == 2
    assert msgs[0].startswith("t.yaml:17:18: compute[0]: undefined tensor 'aa'; did you mean 'a'?")
    assert msgs[1].startswith("t.yaml:18:18: compute[1]: undefined name 'alhpa'")
    assert "did you mean 'alpha'?" in msgs[1]


@pytest.mark.parametrize("stmt,where,words", [
    ("c[m] = a[m * m]", 14, "not affine"),
    ("c[m] = a[2 * (m + 1) - m]", None, None),     # affine after expansion: accepted
    ("c[m] = a[m - 0]", None, None),
    ("c[m] = a[M - 1 - m]", None, None),
    ("c[m] = a[(m + 1) % M]", 24, "positive integer constant"),
    ("c[m] = a[(M - 1 - m) // 2]", None, None),    # 1.1: floor division by a constant
    ("c[m] = a[(m + 1) % 1]", None, None),          # 1.1: modulo by a constant (1: last legal)
    ("c[m] = a[(m + 1) % 0]", 24, "positive integer constant"),   # first illegal divisor
    ("c[m] = a[m // 2 // 2]", 14, "nested"),
    ("c[m] = a[m // 2 * m]", 14, "not affine"),
    ("c[m] = a[m * 0.5]", 18, "integer coefficients"),
])
def test_index_affinity(stmt, where, words):
    text = MINI.replace("c[m] = a[m]", stmt, 1)
    if where is None:
        load_spec_text(text)
        return
    with pytest.raises(NkigenError) as ei:
        load_spec_text(text)
    (d,) = ei.value.diagnostics
    assert d.loc.line == 9 and d.loc.col == where and words in d.rule


MINI = """\
nkigen: 1
name: k
sizes: {M: {}}
inputs:
  a: {shape: [M], dtype: float32}
outputs:
  c: {shape: [M], dtype: float32}
compute:
  - c[m] = a[m]
  - c[m] = a[m]
"""


def test_statement_text_and_position_are_kept():
    s = load_spec_text(MINI)
    assert [st.position for st in s.statements] == [0, 1]
    assert s.statements[1].text == "c[m] = a[m]"


def test_block_scalar_statements_parse_and_point_at_the_item():
    s = load_spec_text(MINI.replace("  - c[m] = a[m]\n  - c[m] = a[m]\n",
                                    "  - >-\n    c[m] =\n    a[m] * 2\n  - |\n    c[m] = (c[m] +\n"
                                    "      a[m])\n"), "b.yaml")
    st0, st1 = s.statements
    assert st0.rhs == BinOp(BinOpKind.MUL, Access("a", (m,)), Const(2.0))
    assert st0.loc == Loc("b.yaml", 9, 5) and st0.rhs.lhs.loc == Loc("b.yaml", 9, 5)
    assert st1.rhs == BinOp(BinOpKind.ADD, Access("c", (m,)), Access("a", (m,)))
    assert st1.loc == Loc("b.yaml", 12, 5)


def test_leading_spaces_in_quoted_statements_keep_columns():
    s = load_spec_text(MINI.replace("  - c[m] = a[m]\n  - c[m] = a[m]\n",
                                    "  - '  c[m] = a[m]'\n"), "q.yaml")
    (st,) = s.statements
    assert st.loc == Loc("q.yaml", 9, 8) and st.rhs.loc == Loc("q.yaml", 9, 15)
