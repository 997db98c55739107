"""Row-body peephole passes (nkigen.codegen.peephole): fewer ScalarE statistics instructions
with the same results, and no fold where it would change a value still read."""

from __future__ import annotations

import re
from pathlib import Path

import sympy

from nkigen.codegen import peephole
from nkigen.codegen import plan as P
from nkigen.dtypes import DType
from nkigen.frontend import load_spec
from nkigen.pipeline import generate

SPECS = Path(__file__).parent.parent / "specs"
D = sympy.Symbol("D", integer=True, positive=True)


def _col(name: str) -> P.Ref:
    return P.Ref(name, (P.Slice(sympy.Integer(0), sympy.Integer(128)),
                        P.Slice(sympy.Integer(0), sympy.Integer(1))))


def _alloc(name: str) -> P.Alloc:
    return P.Alloc(name, (sympy.Integer(128), sympy.Integer(1)), DType.float32, P.Mem.SBUF)


def _prologue(src: str) -> str:
    """The first row tile's statistics of the first stage helper: its straight-line prologue
    (tile 0 prefetched before the loop) in the current API; the loop body in the classic
    dialect, which plans no Python-level prefetch (nkigen/codegen/context.py Build.buffers)."""
    start = src.index("def _")
    stage = src[start:src.index("\n\n\n", start)]
    head, _, body = stage.partition("for pt")
    return body if "neuronxcc" in src.splitlines()[2] else head


def test_rmsnorm_statistic_is_one_rsqrt_activation():
    for dialect in ("nki", "neuronxcc"):
        pro = _prologue(generate(load_spec(SPECS / "rmsnorm.yaml"), dialect=dialect))
        acts = re.findall(r"activation(?:_reduce)?\((.*)\)", pro)
        # square + row sum, then rsqrt(sum * (1 / D) + eps): two ScalarE instructions
        assert len(acts) == 2, acts
        assert "rsqrt" in acts[1] and "scale=1 / D" in acts[1] and "bias=" in acts[1]


def test_log_softmax_negates_max_once():
    for dialect in ("nki", "neuronxcc"):
        pro = _prologue(generate(load_spec(SPECS / "log_softmax.yaml"), dialect=dialect))
        assert len(re.findall(r"scale=-1\.0", pro)) == 2     # -max, then -lse - max
        assert "tensor_tensor" not in pro                     # the add rides on the bias


def test_copy_folds_into_next_activation():
    a = P.Activation(_col("t"), P.ActFunc.COPY, _col("s"), P.Scalar(1 / D))
    b = P.Activation(_col("u"), P.ActFunc.RSQRT, _col("t"), bias=_col("eps"))
    out = peephole.optimize([_alloc("t"), a, _alloc("u"), b])
    assert out == [_alloc("u"), P.Activation(_col("u"), P.ActFunc.RSQRT, _col("s"),
                                             P.Scalar(1 / D), _col("eps"))]


def test_no_fold_when_copy_result_is_read_later():
    a = P.Activation(_col("t"), P.ActFunc.COPY, _col("s"), P.Scalar(1 / D))
    b = P.Activation(_col("u"), P.ActFunc.RSQRT, _col("t"))
    later = P.TensorTensor(_col("v"), _col("t"), _col("u"), P.AluOp.ADD)
    assert peephole.fold_affine_copies([a, b, later]) == [a, b, later]


def test_no_bias_moves_onto_reciprocal():
    # NC-v2's reciprocal activation takes no bias: the copy carrying it must stay
    a = P.Activation(_col("t"), P.ActFunc.COPY, _col("s"), bias=_col("eps"))
    b = P.Activation(_col("t"), P.ActFunc.RECIPROCAL, _col("t"))
    assert peephole.fold_affine_copies([a, b]) == [a, b]
    # a pure scale does fold
    a2 = P.Activation(_col("t"), P.ActFunc.COPY, _col("s"), P.Scalar(sympy.Float(2.0)))
    assert peephole.fold_affine_copies([a2, b]) == [
        P.Activation(_col("t"), P.ActFunc.RECIPROCAL, _col("s"), P.Scalar(sympy.Float(2.0)))]


def test_two_biases_do_not_fold():
    a = P.Activation(_col("t"), P.ActFunc.COPY, _col("s"), bias=_col("b1"))
    b = P.Activation(_col("t"), P.ActFunc.EXP, _col("t"), bias=_col("b2"))
    assert peephole.fold_affine_copies([a, b]) == [a, b]


def test_repeated_activation_reused_unless_source_changed():
    neg = P.Activation(_col("n1"), P.ActFunc.COPY, _col("mx"), P.Scalar(sympy.Float(-1.0)))
    neg2 = P.Activation(_col("n2"), P.ActFunc.COPY, _col("mx"), P.Scalar(sympy.Float(-1.0)))
    use = P.TensorTensor(_col("o"), _col("n2"), _col("o"), P.AluOp.MULTIPLY)
    assert peephole.reuse_activations([neg, neg2, use]) == [
        neg, P.TensorTensor(_col("o"), _col("n1"), _col("o"), P.AluOp.MULTIPLY)]
    # the source is rewritten in between: the repeat computes a different value
    write = P.Memset(_col("mx"), sympy.Float(0.0))
    assert peephole.reuse_activations([neg, write, neg2, use]) == [neg, write, neg2, use]


def test_reuse_refused_when_old_value_read_after_in_place_update():
    neg = P.Activation(_col("n1"), P.ActFunc.COPY, _col("mx"), P.Scalar(sympy.Float(-1.0)))
    neg2 = P.Activation(_col("n2"), P.ActFunc.COPY, _col("mx"), P.Scalar(sympy.Float(-1.0)))
    upd = P.TensorTensor(_col("n2"), _col("n2"), _col("z"), P.AluOp.ADD)
    read_old = P.TensorTensor(_col("o"), _col("n1"), _col("o"), P.AluOp.ADD)
    nodes = [neg, neg2, upd, read_old]
    assert peephole.reuse_activations(nodes) == nodes
    # without the late read of n1 the reuse is safe
    assert peephole.reuse_activations(nodes[:3]) == [
        neg, P.TensorTensor(_col("n1"), _col("n1"), _col("z"), P.AluOp.ADD)]


def test_negated_copy_then_add_is_one_biased_copy():
    neg = P.Activation(_col("t"), P.ActFunc.COPY, _col("lse"), P.Scalar(sympy.Float(-1.0)))
    add = P.TensorTensor(_col("m"), _col("m"), _col("t"), P.AluOp.ADD)
    assert peephole.fold_negated_add([neg, add]) == [
        P.Activation(_col("m"), P.ActFunc.COPY, _col("lse"), P.Scalar(sympy.Float(-1.0)),
                     _col("m"))]
    # t read again later: kept
    later = P.Dma(_col("out"), _col("t"))
    assert peephole.fold_negated_add([neg, add, later]) == [neg, add, later]


def test_bf16_scale_then_weight_splits_into_fast_vector_ops():
    # rmsnorm (bf16): x * rstd * w as tensor_scalar + tensor_tensor (both 16-bit fast modes)
    # instead of a (multiply, multiply) scalar_tensor_tensor at 2N cycles
    src = generate(load_spec(SPECS / "rmsnorm.yaml"), dialect="nki")
    assert "scalar_tensor_tensor" not in src
    assert "nisa.tensor_scalar(" in src and "nisa.tensor_tensor(" in src
    # fp32 layernorm: the split would not be cheaper (no 16-bit modes): the stt form stays
    src = generate(load_spec(SPECS / "layernorm.yaml"), dialect="nki")
    assert "op0=nl.multiply, operand0=" in src and "scalar_tensor_tensor" in src


def _row_alloc(name: str) -> P.Alloc:
    return P.Alloc(name, (sympy.Integer(128), D), DType.bfloat16, P.Mem.SBUF)


def _row(name: str) -> P.Ref:
    return P.Ref(name, (P.Slice(sympy.Integer(0), sympy.Integer(128)),
                        P.Slice(sympy.Integer(0), D)))


def test_dead_reduce_outputs_share_one_scratch():
    a = P.Activation(_row("s1"), P.ActFunc.COPY, _row("x"), reduce_res=_col("r1"))
    b = P.Activation(_row("s2"), P.ActFunc.SQUARE, _row("x"), reduce_res=_col("r2"))
    out = peephole.share_dead_outputs([_row_alloc("s1"), a, _row_alloc("s2"), b])
    assert out == [_row_alloc("s1"), a,
                   P.Activation(_row("s1"), P.ActFunc.SQUARE, _row("x"), reduce_res=_col("r2"))]
    # s2 read afterwards: it is a value, not scratch, and keeps its own tile
    use = P.Dma(_row("y"), _row("s2"))
    nodes = [_row_alloc("s1"), a, _row_alloc("s2"), b, use]
    assert peephole.share_dead_outputs(nodes) == nodes


def test_in_place_activation_is_not_reused():
    # exp(t * 0.1) written over t, then exp(t * 0.1) again: the second reads the new t
    a1 = P.Activation(_col("t"), P.ActFunc.EXP, _col("t"), P.Scalar(sympy.Float(0.1)))
    a2 = P.Activation(_col("y"), P.ActFunc.EXP, _col("t"), P.Scalar(sympy.Float(0.1)))
    out = P.Dma(_col("o"), _col("y"))
    assert peephole.reuse_activations([a1, a2, out]) == [a1, a2, out]
