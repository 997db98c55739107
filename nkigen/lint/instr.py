"""Instruction rules of the lint stage: operator, engine, dtype, memory and shape checks of one
documented call whose arguments are bound to parameter names (stage: lint).

Input: the checker (name resolution, allocation facts, reporting), the call and its bound
arguments. Output: findings added to the checker. Rules: :mod:`nkigen.lint.rules`.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from nkigen.hw import PMAX
from nkigen.lint.api import ApiTable
from nkigen.lint.model import (
    ALLOCATORS,
    BUFFERS,
    INT_DTYPES,
    ONE_BYTE,
    float_literal,
    int_literal,
    src,
)
from nkigen.lint.rules import REDUCE_ALIASES, UNARY_ALU
from nkigen.lint.table import Api

if TYPE_CHECKING:
    from nkigen.lint.checker import _Checker


def call_rules(c: _Checker, node: ast.Call, tab: ApiTable, mod: str, name: str, label: str,
               args: dict[str, ast.expr]) -> None:
    f = c.cur()
    api = tab.api
    if mod == "nki" and name == "jit" and api is Api.NKI:
        if "platform_target" in args:
            c.add(args["platform_target"], "sig.jit-platform-target",
                  "nki.jit(platform_target=...) is rejected in nki 0.3",
                  got=f"platform_target={src(args['platform_target'])}")
        if "mode" in args:
            c.add(args["mode"], "sig.jit-mode", "nki.jit(mode=...) is deprecated",
                  got=f"mode={src(args['mode'])}")
    if mod == "nki.language" and name in ALLOCATORS:
        b = args.get("buffer")
        if b is not None:
            bn = c.buffer_name(b)
            if bn is not None and bn not in BUFFERS:
                c.add(b, "mem.buffer", f"{label}: buffer= is not a memory region",
                      got=f"buffer={src(b)}")
        bn = c.buffer_name(b)
        shape = args.get("shape")
        if name in ("ndarray", "zeros", "ones", "full") and bn in ("sbuf", "psum") \
                and isinstance(shape, (ast.Tuple, ast.List)) and shape.elts:
            p0 = int_literal(shape.elts[0])
            if p0 is not None and p0 > PMAX and not c._has_par_dim(shape):
                c.add(shape.elts[0], "shape.partition-max",
                      f"{label}: partition dimension {p0} on {bn.upper()}",
                      got=f"{p0} > {PMAX}")
        if api is Api.CLASSIC and bn == "shared_hbm" and f is not None and f.kernel \
                and c.scope_depth > 0:
            c.add(node, "mem.shared-hbm-scope",
                  f"{label}(buffer=nl.shared_hbm) inside a loop", got="in a loop")
    if mod != "nki.isa":
        return
    alu_args = {
        "tensor_scalar": ("op0", "op1"), "tensor_tensor": ("op",),
        "scalar_tensor_tensor": ("op0", "op1"), "tensor_reduce": ("op",),
        "tensor_partition_reduce": ("op",), "tensor_scalar_reduce": ("op0", "reduce_op"),
        "tensor_tensor_scan": ("op0", "op1"), "tensor_scalar_cumulative": ("op0", "op1"),
    }.get(name, ())
    ops: dict[str, str | None] = {}
    for k in alu_args:
        op = c.op_name(args.get(k))
        reducing = name in ("tensor_reduce", "tensor_partition_reduce") or k == "reduce_op"
        if reducing and op in REDUCE_ALIASES:
            op = REDUCE_ALIASES[op]
        ops[k] = op
        if op is None or op == "None":
            continue
        if op not in tab.alu:
            c.add(args[k], "op.alu", f"{label}: {k}={op} is not an ALU operator",
                  got=src(args[k]))
        elif reducing and not tab.alu[op].reduce_legal:
            c.add(args[k], "op.reduce", f"{label}: {k}={op} is not a reduction operator",
                  got=src(args[k]))
    engine = c.engine_name(args.get("engine"))
    if name == "tensor_scalar":
        _tensor_scalar(c, node, tab, label, args, ops, engine)
    if name == "tensor_tensor" and api is Api.CLASSIC and engine not in (None, "unknown"):
        op = ops.get("op")
        if op in tab.alu and tab.alu[op].engines and engine not in tab.alu[op].engines:
            c.add(args["engine"], "engine.alu-engine",
                  f"{label}: op={op} does not run on the {engine} engine",
                  got=f"supported: {'/'.join(tab.alu[op].engines)}")
    if name in ("activation", "activation_reduce"):
        op = c.op_name(args.get("op"))
        if op is not None and op != "None" and op not in tab.act:
            c.add(args["op"], "op.activation",
                  f"{label}: op={op} is not an activation function",
                  got=src(args["op"]))
        red = c.op_name(args.get("reduce_op"))
        if red not in (None, "None", "add"):
            c.add(args["reduce_op"], "op.activation-reduce",
                  f"{label}: reduce_op must be nl.add", got=f"reduce_op={red}")
        if int_literal(args.get("scale")) is not None:
            c.add(args["scale"], "dtype.fp32-scalar",
                  f"{label}: scale must be a float32 constant",
                  got=f"scale={src(args['scale'])}",
                  fix=f"write scale={float(int_literal(args['scale']) or 0)!r}")
    if name in ("nc_matmul", "nc_transpose"):
        tensor_engine = name == "nc_matmul" or c.engine_name(args.get("engine")) == "tensor"
        ins = ("stationary", "moving") if name == "nc_matmul" else ("data",)
        want = [(k, "sbuf") for k in ins] + [("dst", "psum")]
        for k, buf in want if tensor_engine else ():
            a = c.fact(args.get(k), f)
            if a is not None and a.buffer is not None and a.buffer != buf:
                c.add(args[k], "mem.matmul", f"{label}: {k} must be in {buf.upper()}",
                      got=f"{src(args[k])} in buffer={a.buffer}")
    if name == "nc_transpose" and api is Api.NKI:
        d, s = c.fact(args.get("dst"), f), c.fact(args.get("data"), f)
        if d and s and d.dtype and s.dtype and d.dtype != s.dtype:
            c.add(node, "dtype.nc-transpose",
                  f"{label}: dst dtype must equal data dtype",
                  got=f"dst {d.dtype}, data {s.dtype}")
    if name == "dma_transpose":
        d, s = c.fact(args.get("dst"), f), c.fact(args.get("src"), f)
        small = [(w, a.dtype) for w, a in (("src", s), ("dst", d))
                 if a is not None and a.dtype in ONE_BYTE]
        if small:
            c.add(node, "dtype.dma-transpose-size",
                  f"{label}: DMA transpose supports 2- and 4-byte dtypes only",
                  got=", ".join(f"{w} {t}" for w, t in small))
        elif d and s and d.dtype and s.dtype and d.dtype != s.dtype and api is Api.NKI:
            c.add(node, "dtype.dma-transpose-match",
                  f"{label}: src and dst dtypes differ", got=f"src {s.dtype}, dst {d.dtype}")
    if name == "memset" and api is Api.NKI:
        d = c.fact(args.get("dst"), f)
        v = args.get("value")
        if d and v is not None and d.dtype in INT_DTYPES and float_literal(v):
            c.add(v, "dtype.memset-value", f"{label}: float value for an integer tile",
                  got=f"value={src(v)} into {d.dtype}")
    if name == "dma_copy" and api is Api.NKI:
        s = c.fact(args.get("src"), f)
        if s is not None and s.buffer == "psum":
            c.add(args["src"], "mem.dma-from-psum", f"{label}: src is a PSUM tile",
                  got=src(args["src"]))

def _tensor_scalar(c: _Checker, node: ast.Call, tab: ApiTable, label: str,
                   args: dict[str, ast.expr], ops: dict[str, str | None],
                   engine: str | None) -> None:
    op0, op1 = ops.get("op0"), ops.get("op1") or "None"
    eng_node = args.get("engine", node)
    known = op0 is not None and op0 in tab.alu and (op1 == "None" or op1 in tab.alu)
    if engine == "gpsimd":
        bad = [o for o in (op0, op1) if o not in (None, "None", "rsqrt")]
        if bad:
            c.add(eng_node, "engine.gpsimd-rsqrt",
                  f"{label}: engine=gpsimd is allowed only for rsqrt",
                  got=f"op0={op0}" + (f", op1={op1}" if op1 != "None" else ""))
    cats = {tab.alu[o].category for o in (op0, op1) if o in tab.alu}
    if engine == "scalar" and known and "bitvec" not in cats and (op0, op1) not in (
            ("multiply", "add"), ("multiply", "None"), ("add", "None")):
        c.add(eng_node, "engine.scalar-ops",
              f"{label}: this operator pair does not run on the Scalar engine",
              got=f"op0={op0}, op1={op1}")
    if "bitvec" in cats and engine not in (None, "vector", "unknown"):
        c.add(eng_node, "engine.bitvec-vector",
              f"{label}: bitvec operators run on the Vector engine only",
              got=f"engine={engine}")
    if tab.api is Api.CLASSIC and known and engine not in (None, "unknown", "gpsimd"):
        for o in (op0, op1):
            if o in tab.alu and tab.alu[o].engines and engine not in tab.alu[o].engines:
                c.add(eng_node, "engine.alu-engine",
                      f"{label}: {o} does not run on the {engine} engine",
                      got=f"supported: {'/'.join(tab.alu[o].engines)}")
    if tab.api is Api.NKI:
        for k_op, k_val in (("op0", "operand0"), ("op1", "operand1")):
            o = ops.get(k_op)
            v = int_literal(args.get(k_val))
            if v is None or o is None or o not in tab.alu:
                continue
            cat = tab.alu[o].category
            if cat == "bitvec" or ((cat == "unary" or o in UNARY_ALU) and v == 0):
                continue
            c.add(args[k_val], "dtype.fp32-scalar",
                  f"{label}: {k_val} must be a float32 constant with {k_op}={o}",
                  got=f"{k_val}={src(args[k_val])}", fix=f"write {k_val}={float(v)!r}")
