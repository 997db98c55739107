"""Render a KernelPlan as kernel source through one dialect's Jinja templates.

Stage: render (KernelPlan -> Python source text). Each plan node kind has exactly one emitter:
a macro of ``templates/<dialect>/ops.j2`` named in :data:`EMITTERS`; the module skeleton is
``templates/<dialect>/kernel.j2``. This module only turns plan nodes into plain view dicts
(expressions printed by :mod:`nkigen.codegen.pyexpr`, enums as their values), indents loop
bodies and escapes the docstring. Output is deterministic: no timestamps, no set iteration.
"""

from __future__ import annotations

import re
from dataclasses import replace
from enum import Enum
from functools import cache

import jinja2
import sympy

from nkigen.codegen import ahead, classic_index, consts, cse
from nkigen.codegen import plan as P
from nkigen.codegen.classic_mask import FlagIf, Masked, Pad
from nkigen.codegen.classic_mask import apply as classic_masks
from nkigen.codegen.names import checked
from nkigen.codegen.plan_ext import (
    EXT_EMITTERS,
    AffineSelect,
    GatherDma,
    Iota,
    TensorScalarReduce,
    VeTranspose,
)
from nkigen.codegen.pyexpr import py
from nkigen.codegen.symcache import names
from nkigen.diagnostics import error
from nkigen.hw import target as hw_target
from nkigen.templating import environment

API_VERSION: dict[str, str] = {"nki": "nki 0.3", "neuronxcc": "neuronxcc.nki (SDK 2.21-2.26)"}

EMITTERS: dict[type, str] = {
    P.Comment: "comment", P.Let: "let", P.Alloc: "alloc", P.Loop: "loop", P.If: "if_",
    P.Dma: "dma", P.DmaTranspose: "dma_transpose", P.Matmul: "matmul",
    P.PeTranspose: "pe_transpose", P.Activation: "activation",
    P.TensorTensor: "tensor_tensor", P.TensorScalar: "tensor_scalar",
    P.ScalarTensorTensor: "scalar_tensor_tensor",
    P.TensorReduce: "tensor_reduce", P.Reciprocal: "reciprocal", P.TensorCopy: "tensor_copy",
    P.Memset: "memset",
}
EMITTERS.update(EXT_EMITTERS)     # spec-language 1.1 nodes (templates: the same macro names)

INDENT = "    "

# The stage docstring line of a NeuronCore-v2 stage with TensorE transposes (S29
# nki/api/nki/isa/__init__.py nc_transpose, nki 0.3; S25 general/nki/api/nki/isa/__init__.py
# nc_transpose, SDK 2.25): what a NaN/Inf in the turned data does, so the kernel says it.
# The stage docstring line of a current-API NeuronCore-v2 stage with an indirect DMA (review 9
# R9-6, conformance row isa.dma_copy.indirect_v3): the documents disagree, so the kernel says so.
INDIRECT_V2 = ("NeuronCore-v2: indirect DMA (vector_offset): the DMA guide lists it from "
               "NeuronCore-v3 only (SH nki/deep-dives/nki-dge.rst, swdge 'indirect: v3+'), the "
               "dma_copy reference names no generation; for trn1 the classic dialect "
               "(--dialect neuronxcc) documents indirect loads")
NOT_EXACT_V2 = ("NeuronCore-v2: a TensorE transpose is a matmul with the identity, not "
                "bit-accurate for NaN/Inf: a NaN/Inf in a turned tile makes its whole row of "
                "the turned block NaN (verified on finite data only)")


@cache
def _env() -> jinja2.Environment:
    return environment()


@cache
def _ops(dialect: str):
    return _env().get_template(f"{dialect}/ops.j2").module


def warm(dialect: str) -> None:
    """Compile ``dialect``'s templates now: a process about to fork workers that render (the
    tuner's pool) then hands them compiled, instead of each worker compiling its own."""
    if dialect in API_VERSION:
        _ops(dialect)
        _env().get_template(f"{dialect}/kernel.j2")


def doc_literal(doc: str) -> str:
    """Docstring body safe inside triple double quotes: no quote, backslash or control char
    can end the literal or start an escape; newlines keep the text readable."""
    out = []
    for ch in doc.replace("\\", "\\\\").replace('"', '\\"'):
        o = ord(ch)
        if ch == "\n":
            out.append("\n" + INDENT)
        elif ch.isprintable() and o < 0x10000 and ch not in "\u2028\u2029":
            out.append(ch)
        elif o < 0x100:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    s = "".join(out).rstrip()
    return s or "Generated kernel."


# ---- view models -------------------------------------------------------------------------

def _dim(d: P.Dim) -> str:
    if isinstance(d, P.Index):
        return py(d.at)
    start, size, step = d.start, d.size, sympy.sympify(d.step)
    if step == 1:
        return f"{py(start)}:{py(sympy.expand(start + size))}"
    stop = sympy.expand(start + (size - 1) * step + 1)
    return f"{py(start)}:{py(stop)}:{py(step)}"


_FLOAT_PARAMS: set[str] = set()    # float-valued params of the plan being rendered
_CONST_VALUES: dict = {}           # module-level constant symbol -> its value (render.consts)
# classic: SBUF tile name -> the shape a broadcast must fill to be bound directly (None: any
# corner, in a kernel whose readers use the same min()-sized corner)
_WHOLE: dict[str, tuple | None] = {}


def _f32(e) -> str:
    """A scalar instruction operand as a float expression: activation ``scale`` and
    tensor_scalar ``operand0/1`` must be float32 (SH nki/api/nki/isa/__init__.py tensor_scalar
    "operand0 and operand1 (if used) must be float32", activation ``scale: float``, nki 0.3)."""
    e = sympy.sympify(e)
    if e.is_number:
        return py(e) if e.is_infinite else repr(float(e))
    text = py(e)
    if e.free_symbols and all(x.name in _FLOAT_PARAMS for x in e.free_symbols) \
            and not any(isinstance(a, (sympy.floor, sympy.ceiling, sympy.Mod))
                        for a in sympy.preorder_traversal(e)):
        return text                   # float params: the expression is a float already
    if "/" in text.replace("//", ""):
        return text                   # a true division is a Python float already
    return f"float({text})"


# classic: (extent, grid axis, grid rank) -> the name of the nl.arange index tile the function
# being rendered defines for it (classic_index)
_LANE_NAMES: dict[tuple[str, int, int], str] = {}


def _lane_dims(r: classic_index.LaneRef) -> list[str]:
    """A LaneRef's dims: ``start + step * i_axis`` per slice (its grid axis's index tile)."""
    out = []
    for d, (axis, rank) in zip(r.dims, classic_index.grid_axes(r)):
        if isinstance(d, P.Index):
            out.append(py(d.at))
            continue
        # a function rendered without _body (no tiles defined): the index inline
        name = _LANE_NAMES.get((py(d.size), axis, rank)) \
            or f"nl.arange({py(d.size)}){classic_index.placement(axis, rank)}"
        step = sympy.sympify(d.step)
        lane = name if step == 1 else f"{_p3(step)} * {name}"
        out.append(lane if sympy.sympify(d.start) == 0 else f"{py(d.start)} + {lane}")
    return out


def _p3(e) -> str:
    text = py(e)
    return text if re.fullmatch(r"\w+", text) else f"({text})"


def _ref(r) -> dict | None:
    if r is None:
        return None
    if isinstance(r, classic_index.ViewRef):
        name = checked(r.name, "tensor")
        view = [" * ".join(f"{name}.shape[{k}]" for k in ax) or "1" for ax in r.view]
        return {"kind": "ref", "name": name, "dims": _lane_dims(r), "view": view,
                "bcast": [py(x) for x in r.bcast]}
    if isinstance(r, classic_index.LaneRef):
        return {"kind": "ref", "name": checked(r.name, "tensor"), "dims": _lane_dims(r)}
    if isinstance(r, P.ApRef):
        return {"kind": "ap", "name": checked(r.name, "tensor"), "offset": py(r.offset),
                "pattern": [(py(s), py(n)) for s, n in r.pattern]}
    if isinstance(r, P.Scalar):
        return {"kind": "scalar", "value": py(r.value) if r.integer else _f32(r.value)}
    return {"kind": "ref", "name": checked(r.name, "tensor"), "dims": [_dim(d) for d in r.dims]}


def _view(n) -> dict:
    v: dict = {}
    for k in n.__dataclass_fields__:
        x = getattr(n, k)
        if isinstance(x, (P.Ref, P.ApRef, P.Scalar)):
            v[k] = _ref(x)
        elif isinstance(x, (P.Mem, P.LoopKind, P.AluOp, P.ActFunc, P.Eng, P.Cmp)) or k == "dtype":
            v[k] = x.value
        elif isinstance(x, sympy.Basic):
            v[k] = py(x)
        elif k == "shape":
            v[k] = [py(s) for s in x]
        elif k == "names":
            v[k] = [checked(x, "generated name") for x in x]
        elif k in ("name", "var"):
            v[k] = checked(x, "generated name")
        elif k == "text":
            v[k] = re.sub(r"[^\x20-\x7e]", "?", x)
        elif isinstance(x, Enum):
            raise TypeError(f"render: enum field {k} of {type(n).__name__} has no conversion")
        else:
            v[k] = x
    if isinstance(n, P.Activation) and isinstance(n.scale, P.Scalar) \
            and sympy.sympify(n.scale.value).is_number and float(n.scale.value) == 1.0:
        v["scale"] = None
    return v


def _binds_whole(node, in_if: bool) -> bool:
    """Classic partition broadcast into the corner of an on-chip tile: the name is bound to
    the broadcast tile (no copy); readers index the same corner (min()-sized kernels, _WHOLE
    value None) or the whole tile under a mask (the tile must be whole then). Never inside an
    ``if``: a tensor created there is out of scope after the block (S25
    general/nki/api/nki.errors.rst err_local_variable_used_out_of_scope); the load is written
    into the tile allocated before the ``if`` instead."""
    return isinstance(node, P.Dma) and isinstance(node.dst, P.Ref) and not in_if \
        and node.dst.name in _WHOLE \
        and all(isinstance(d, P.Slice) and d.start == 0 and d.step == 1
                for d in node.dst.dims) \
        and _WHOLE[node.dst.name] in (None, tuple(sympy.sympify(d.size)
                                                  .xreplace(_CONST_VALUES)
                                                  for d in node.dst.dims
                                                  if isinstance(d, P.Slice)))


def _broadcast(node: P.Dma) -> bool:
    """The load is rendered as ``nl.load(...).broadcast_to(...)`` (ops.j2 ``dma``)."""
    src = _view(node)["src"]
    if src.get("bcast"):
        return True
    pat = src.get("pattern")
    return src.get("kind") == "ap" and bool(pat) and pat[0][0] == "0" and pat[0][1] != "1"


def _dead_allocs(nodes, in_if: bool) -> dict[int, str]:
    """Classic: an SBUF tile of this block whose first use is a broadcast load that rebinds
    its name (:func:`_binds_whole`) is never read, as re-binding a name shadows the tensor
    (S25 general/nki/api/nki.errors.rst): its ``nl.ndarray`` line is dropped and the load
    names the dtype itself (review4 F6). Maps id() of the Alloc and of the load to that
    dtype."""
    dead: dict[int, str] = {}
    pending: dict[str, P.Alloc] = {}
    for n in nodes:
        node = n.node if isinstance(n, Masked) else n
        if isinstance(node, P.Alloc) and node.mem is P.Mem.SBUF and not isinstance(n, Masked):
            pending[node.name] = n
            continue
        if isinstance(node, P.Dma) and _binds_whole(node, in_if) \
                and node.dst.name in pending and _broadcast(node) \
                and node.dst.name not in P.names_used(node.src):
            alloc = pending.pop(node.dst.name)
            dt = str(_view(alloc)["dtype"])
            dead[id(alloc)] = dead[id(n)] = dt
            continue
        used = set(n.args) if isinstance(n, ahead.Call) else P.names_used(n)
        for nm in [k for k in pending if k in used]:
            del pending[nm]
    return dead


def _lines(nodes, ops, depth: int, in_if: bool = False,
           dead: dict[int, str] | None = None, tail: bool | None = None) -> list[str]:
    """``dead``: :func:`_dead_allocs` of the whole block, when ``nodes`` is a part of it.
    ``tail``: the block ends its stage helper (default: the helper's own block, depth 1; a
    branch of an ``if`` that ends the helper does too, so a trace-time choice nested in another
    one, codegen/rowsplit.py's inside the fuse test, keeps its broadcasts unscoped)."""
    if tail is None:
        tail = depth == 1
    out: list[str] = []
    pad = INDENT * depth
    if dead is None:
        dead = _dead_allocs(nodes, in_if)
    for k, n in enumerate(nodes):
        if isinstance(n, ahead.Call):      # a pipelined loop's head / a peeled iteration
            out.append(pad + f"{checked(n.fn, 'generated name')}("
                       + ", ".join([checked(a, "generated name") for a in n.args]
                                   + [py(n.index)]
                                   + [repr(x) if isinstance(x, bool) else py(x)
                                      for x in n.extra]) + ")")
            continue
        if isinstance(n, FlagIf):          # classic: a peeled loop's last-iteration flag
            names, then = [n.flag], n.then
            while len(then) == 1 and isinstance(then[0], FlagIf) and then[0].orelse == n.orelse:
                names.append(then[0].flag)      # nested flags, one else: one `and`
                then = then[0].then
            out.append(pad + "if " + " and ".join(checked(x, "generated name") for x in names)
                       + ":")
            out.extend(_lines(then, ops, depth + 1, True) or [pad + INDENT + "pass"])
            if n.orelse:
                out.append(pad + "else:")
                out.extend(_lines(n.orelse, ops, depth + 1, True))
            continue
        if isinstance(n, P.Release):
            # lifetimes end with the scope: loop-body tiles when the next iteration rebinds
            # them, stage tiles when the stage's helper returns (_stages); no documented NKI
            # kernel uses `del` inside @nki.jit. Release nodes only feed the SBUF bound
            # (rows.upper_bound)
            continue
        node, mask = (n.node, n.mask) if isinstance(n, Masked) else (n, None)
        view = _view(node)
        if mask:                          # classic: an instruction issued with mask=
            view["mask"] = mask
        if isinstance(n, Pad):            # classic: a matmul operand's zero fill
            view["engine"] = n.engine
        if isinstance(node, P.Alloc) and id(n) in dead:
            continue                      # rebound by its broadcast load below (_dead_allocs)
        if _binds_whole(node, in_if):
            view["whole"] = True
            if id(n) in dead:
                view["dtype_lit"] = dead[id(n)]
        text = str(getattr(ops, EMITTERS[type(node)])(view))
        out.extend(pad + line for line in text.splitlines())
        if isinstance(n, P.Loop):
            out.extend(_lines(n.body, ops, depth + 1, in_if) or [pad + INDENT + "pass"])
        elif isinstance(n, P.If):
            # an if that ends its stage helper (the planner's trace-time fuse choice) has
            # branches whose tensors no later line reads: no scope limit applies there
            scoped = in_if or not tail or any(
                not isinstance(x, P.Release) for x in nodes[k + 1:])
            out.extend(_lines(n.then, ops, depth + 1, scoped, tail=not scoped)
                       or [pad + INDENT + "pass"])
            if n.orelse:
                out.append(pad + str(ops.else_(_view(n))))
                out.extend(_lines(n.orelse, ops, depth + 1, scoped, tail=not scoped))
    return out


def _body(nodes, ops, taken: set[str], lanes: bool = True) -> list[str]:
    """A function body's lines. In a classic kernel whose HBM views read nl.arange index tiles
    (classic_index.LaneRef), each tile is defined once, before the first top-level statement
    that uses it (after the sizes the function computes first: an extent may be one), as in the
    docs' ragged example (S25 general/nki/api/nki.api.shared.rst "NKI API Masking").
    ``lanes`` False: the nodes hold no LaneRef (only classic_index.apply makes them, for the
    classic dialect), so they are not searched for one."""
    if not lanes:
        return _lines(nodes, ops, 1)
    inner = _loop_bound_names(nodes)

    def keys_of(ns) -> list[tuple[str, int, int]]:
        # an extent computed inside a loop (the min()-sized ragged tile of a static_range loop:
        # ``fsz``) cannot be a tile defined before that loop: such an index stays inline
        return list(dict.fromkeys(
            (py(d.size), axis, rank) for r in classic_index.lane_refs(ns)
            for d, (axis, rank) in zip(r.dims, classic_index.grid_axes(r))
            if isinstance(d, P.Slice) and not (set(re.findall(r"\w+", py(d.size))) & inner)))

    keys = keys_of(nodes)
    if not keys:
        return _lines(nodes, ops, 1)
    names = _lane_names(keys, taken)
    _LANE_NAMES.clear()
    _LANE_NAMES.update(names)
    out: list[str] = []
    done: set = set()
    dead = _dead_allocs(nodes, False)
    try:
        for n in nodes:
            new = [k for k in keys_of((n,)) if k not in done]
            if new:
                tiles = [{"name": names[k], "extent": k[0],
                          "where": classic_index.placement(k[1], k[2])} for k in new]
                text = str(ops.lane_tiles(tiles, not done)).splitlines()
                out.extend(INDENT + line for line in text)
                done.update(new)
            out.extend(_lines((n,), ops, 1, dead=dead))
    finally:
        _LANE_NAMES.clear()          # this function's names only
    return out


def _loop_bound_names(nodes) -> set[str]:
    """The names a ``Let`` or loop binds inside a loop body of ``nodes`` (any depth)."""
    out: set[str] = set()

    def walk(ns, inside: bool) -> None:
        for n in ns:
            if isinstance(n, P.Let) and inside:
                out.add(n.name)
            elif isinstance(n, P.Loop):
                out.add(n.var)
                walk(n.body, True)
            elif isinstance(n, P.If):
                walk(n.then, inside)
                walk(n.orelse, inside)
    walk(nodes, False)
    return out


def _lane_names(keys: list[tuple[str, int, int]], taken: set[str]) -> dict:
    """``i_p`` / ``i_f`` (``i_f1``, ``i_f2`` of a 3-axis grid; ``i_row`` / ``i_col`` of extent 1)
    per grid axis; an axis with
    several extents in one function: ``i_p_<extent>``; never a name the kernel uses."""
    per: dict[str, list] = {}
    for k in keys:
        # a one-element axis (the one row of a (1, N) view, the one column of an (N, 1) view)
        # has its own name, as the rmsnorm tutorial's ``iw = nl.arange(1)[:, None]``
        letter = classic_index.axis_letter(k[1], k[2])
        if k[0] == "1":
            letter = "row" if k[1] == 0 else "col" if k[2] <= 2 else f"one{k[1]}"
        per.setdefault(letter, []).append(k)
    out: dict = {}
    used = set(taken)
    for letter, ks in per.items():
        for k in ks:
            base = f"i_{letter}" if len(ks) == 1 else \
                f"i_{letter}_" + (re.sub(r"\W+", "_", k[0]).strip("_").lower() or "n")
            name, j = base, 1
            while name in used:
                j += 1
                name = f"{base}_{j}"
            used.add(name)
            out[k] = checked(name, "generated name")
    return out


def _read_names(node) -> set[str]:
    """Every tensor and variable name a node (recursively) mentions, index expressions of its
    views included (``P.names_used`` stops at a view's tensor name)."""
    out: set[str] = set()
    _add_read_names(node, out)
    return out


def _add_read_names(node, out: set[str]) -> None:
    if isinstance(node, (str, int, float)) or node is None:    # no names below
        return
    if isinstance(node, (P.Ref, P.ApRef)):
        out.add(node.name)
    if isinstance(node, sympy.Basic):
        out.update(names(node))
    elif isinstance(node, tuple):
        for x in node:
            _add_read_names(x, out)
    elif hasattr(node, "__dataclass_fields__"):
        for k in node.__dataclass_fields__:
            _add_read_names(getattr(node, k), out)
        # kernel tensors a node names by a plain string (e.g. GatherDma.table)
        out.update(getattr(node, k) for k in getattr(node, "NAME_FIELDS", ()))




def _walk(nodes):
    for n in nodes:
        yield n.node if isinstance(n, Masked) else n
        if isinstance(n, P.Loop):
            yield from _walk(n.body)
        elif isinstance(n, P.If):
            yield from _walk(n.then)
            yield from _walk(n.orelse)


def _stage_doc(text: str, nodes, nc_version: int = 3, classic: bool = False) -> str:
    """A stage helper's docstring: its statements, then one line per engine it uses saying
    what runs there and why that engine. On NeuronCore-v2 a stage with TensorE transposes says
    they are exact for finite data only (:data:`NOT_EXACT_V2`), and a current-API stage with
    an indirect DMA names the documents' disagreement on it (:data:`INDIRECT_V2`)."""
    seen = list(_walk(nodes))
    kinds = {type(n) for n in seen}
    acts = sorted({n.func.value for n in seen if isinstance(n, P.Activation)})
    def on_gpsimd(n) -> bool:
        return isinstance(n, P.TensorTensor) and n.engine is P.Eng.GPSIMD

    alu = sorted({n.op0.value for n in seen if isinstance(n, P.TensorScalar)}
                 | {n.op.value for n in seen if isinstance(n, (P.TensorTensor, P.TensorReduce))
                    and not on_gpsimd(n)})
    int_alu = sorted({n.op.value for n in seen if on_gpsimd(n)})
    lines = [" ".join(text.splitlines()), ""]   # a statement's own line breaks stay inside it
    if kinds & {P.Matmul, P.PeTranspose}:
        what = [w for w, k in (("matmul", P.Matmul), ("transpose", P.PeTranspose)) if k in kinds]
        lines.append(f"TensorE: {', '.join(what)} (the systolic array; matmuls accumulate "
                     "their contraction tiles in PSUM)")
        if P.PeTranspose in kinds and nc_version < 3:
            lines.append(NOT_EXACT_V2)
    if acts:
        lines.append(f"ScalarE: activation {', '.join(acts)} (the only engine with the "
                     "function table; scale/bias ride along for free)")
    vec = ([f"ALU {', '.join(alu)}"] if alu else []) + [
        w for w, k in (("reciprocal", P.Reciprocal), ("PSUM eviction", P.TensorCopy),
                       ("scalar_tensor_tensor", P.ScalarTensorTensor),
                       ("PSUM eviction with a row reduction", TensorScalarReduce),
                       ("32x32 transpose (exact for NaN/Inf)", VeTranspose)) if k in kinds]
    if vec:
        lines.append(f"VectorE: {'; '.join(vec)} (two-tile arithmetic and reductions; "
                     "row work is balanced against ScalarE)")
    if any(isinstance(n, P.Memset) and n.engine is P.Eng.GPSIMD for n in seen):
        lines.append("GpSimd: memset of the accumulator (off VectorE, which adds the PSUM "
                     "tiles into it)")
    if int_alu:
        lines.append(f"GpSimd: int32 ALU {', '.join(int_alu)} (native integer arithmetic, "
                     "exact for every 32-bit value; VectorE would round through float32)")
    dma = [w for w, k in (("copies", P.Dma), ("transposing loads", P.DmaTranspose))
           if k in kinds]
    if dma:
        lines.append(f"DMA: {', '.join(dma)}")
    if GatherDma in kinds and not classic and nc_version < 3:
        lines.append(INDIRECT_V2)
    if any(isinstance(n, P.If) and n.cmp is P.Cmp.LT for n in seen):
        lines.append("Pipelined: tile i+1's loads (and row statistics) are issued before "
                     "tile i's remaining work, so the DMA queues never wait on compute.")
    return "\n".join(lines)


def _stages(plan: P.KernelPlan, known: list[str]) -> tuple[list, list[dict]]:
    """Split the kernel body at its stage comments: the nodes before the first stage (the HBM
    outputs and temps) stay in the kernel, each stage becomes one helper function.

    A stage's on-chip tiles then live in the helper's scope and end when it returns, as the
    documented kernels rely on (no `del` in any documented NKI program): the simulator, like
    CPython, frees an allocation when its last reference dies, and a Python function is the
    only scope narrower than the kernel.
    """
    head: list = []
    groups: list[list] = []
    for n in plan.body:
        if isinstance(n, P.Comment):
            groups.append([n])
        elif groups:
            groups[-1].append(n)
        else:
            head.append(n)
    helpers = []
    for i, g in enumerate(groups):
        free = _read_names(tuple(g[1:])) - P.bound_names(g[1:]) - {
            s.name for s in _CONST_VALUES}
        stray = sorted(free - set(known))
        if stray:
            raise AssertionError(f"render: stage {i} reads names bound by another stage: {stray}")
        helpers.append({"name": checked(f"{_helper_prefix(plan.name, known)}_stage{i}",
                                        "generated name"), "comment": g[0],
                        "args": [x for x in known if x in free], "nodes": tuple(g[1:])})
    return head, helpers


def _peeled_doc(h: ahead.Helper) -> str:
    """The docstring of one iteration of a peeled classic loop (classic_mask.Peeled)."""
    sizes = [x for x in h.extra if not x.startswith("last_")]
    flag = [x for x in h.extra if x.startswith("last_")]
    what = []
    if sizes:
        what.append(f"{', '.join(sizes)} full in the loop, the remainder in the last call")
    if flag:
        what.append(f"{flag[0]} True only in the last call")
    seq = h.kind == P.LoopKind.SEQUENTIAL.value
    why = ("so no mask= depends on the sequential index (S25 general/nki/api/nki.api.shared.rst "
           "\"NKI API Masking\")" if seq else
           "so the last tile's matmul is issued at its size (an nc_matmul takes no lane mask, "
           "S25 general/nki/api/nki.api.shared.rst \"NKI API Masking\")")
    return (f"One iteration {h.var} of a loop: called for each full iteration in "
            f"nl.{'sequential_range' if seq else 'affine_range'}, then once for the last one "
            f"with a trace-time index ({'; '.join(what)}), {why}.")


def _helper_prefix(kernel: str, known: list[str]) -> str:
    """The private prefix of the kernel's helper functions: one leading underscore before the
    kernel name without its own leading underscores (``_x`` -> ``_x``, not ``__x``: the name
    checker rejects a dunder prefix, and the pipeline heads extend the stage names). A
    numbered prefix (``_k2``) when a kernel name (an argument, size, param or HBM temp, which
    would shadow the module-level helper inside the kernel) starts with the prefix and '_':
    an input named ``_k_stage0`` of kernel ``k`` made ``_k_stage0(...)`` call the tensor."""
    base = "_" + (kernel.lstrip("_") or "kernel")
    prefix, k = base, 2
    while any(n.startswith(prefix + "_") for n in known):
        prefix, k = f"{base}{k}", k + 1
    return prefix


def _per_stage(body: tuple, fn) -> tuple:
    """``fn(i, nodes)`` applied to each stage's nodes (stage ``i``: its comment up to the
    next one): each stage becomes its own helper function, so no scope spans two stages (see
    :func:`_stages`)."""
    out: list = []
    group: list = []
    i = -1
    for n in body + (None,):
        if n is None or isinstance(n, P.Comment):
            out.extend(fn(i, tuple(group)) if group and isinstance(group[0], P.Comment)
                       else group)
            group = []
            i += 1
        if n is not None:
            group.append(n)
    return tuple(out)


def _stats(nodes) -> str:
    """' and row statistics' when a pipeline head computes more than its loads."""
    work = [n for n in _walk(nodes) if not isinstance(n, (P.Let, P.Alloc, P.Release, P.Dma,
                                                             P.DmaTranspose))]
    return " and row statistics" if work else ""


def _fstr(text: str) -> str:
    """An f-string literal; ``text`` holds only identifiers, digits, {name} fields and ASCII."""
    assert '"' not in text and "\\" not in text
    return f'f"{text}"'


_CONCRETE = (sympy.Min, sympy.Max, sympy.floor, sympy.ceiling, sympy.Mod, sympy.Piecewise)


def _trace_time_loop_vars(body) -> set[str]:
    """Classic loop variables whose value a Python computation needs at trace time.

    Classic ``nl.affine_range`` / ``nl.sequential_range`` trace their body once with a symbolic
    index (S25 general/nki/api/nki/language/__init__.py affine_range, SDK 2.25): affine index
    arithmetic on it is fine, but ``min()``/``max()``/floor division of it, an ``if`` on it, or
    an inner loop count depending on it need the concrete value, which only ``nl.static_range``
    (or a plain Python ``range``) gives. Returns the variables of the loops that must be static.

    So does an ``affine_select`` predicate or ``iota`` expression depending on an
    ``nl.sequential_range`` index: it "must not depend on any runtime variables that can't be
    resolved at compile-time" and is built from nl.arange / affine_range / program_id terms
    only (S25 general/nki/api/nki/isa/__init__.py affine_select, SDK 2.25; the simulator's
    rule ``select.sequential-index``). A row reduction's sequential accumulation loop over
    ``m`` with the condition ``n <= m`` (``max(where(n <= m, x[b, m, n], -5.0), n, m)``)
    broke it (fuzz7); the loop is then static, its index a trace-time int.
    """
    deps: dict[str, set[str]] = {}   # trace-time name -> loop variables it depends on
    need: set[str] = set()
    sequential: set[str] = set()

    def of(expr) -> set[str]:
        out: set[str] = set()
        for sym in sympy.sympify(expr).free_symbols:
            out |= deps.get(sym.name, set())
        return out

    def walk(nodes) -> None:
        for n in nodes:
            inner = n.node if isinstance(n, Masked) else n
            if isinstance(n, Masked) and n.mask:
                # a mask= comparison is an affine expression of nl.arange, nl.affine_range
                # and nl.program_id terms (S25 general/nki/api/nki.api.shared.rst "NKI API
                # Masking"; the simulator's rule mask.sequential-index): a mask naming a
                # sequential index (a ragged chunk of a sequential reduction whose reads take
                # its index, fuzz13) makes that loop static
                for name in set(re.findall(r"[A-Za-z_]\w*", n.mask)):
                    need.update(deps.get(name, set()) & sequential)
            if isinstance(inner, (AffineSelect, Iota)):
                need.update(of(inner.offset) & sequential)
                # floor division / modulo of any loop index is no affine expression either
                # (fuzz9: `i_n % 2 + 0 * nl.arange(...) == 0` of where(n % 2 == 0, ...))
                for q in sympy.sympify(inner.offset).atoms(*_CONCRETE):
                    need.update(of(q))
            if isinstance(n, P.Loop):
                need.update(of(n.count))
                deps[n.var] = {n.var}
                if n.kind is P.LoopKind.SEQUENTIAL:
                    sequential.add(n.var)
                walk(n.body)
            elif isinstance(n, P.Let):
                d = of(n.value)
                deps[n.name] = d
                if sympy.sympify(n.value).has(*_CONCRETE):
                    need.update(d)
            elif isinstance(n, P.If):
                need.update(of(n.lhs) | of(n.rhs))
                walk(n.then)
                walk(n.orelse)
            else:
                # ``%`` or ``//`` of a loop index inside an index (``w[i_row, i_n % 4 + i_col]``):
                # an index is an affine expression of index-generating APIs (S25 general/nki/
                # programming_model.rst "Tensor", SDK 2.25), which i_n % 4 is not; a
                # trace-time int is (review 9 R9-2)
                for e in _index_exprs(inner):
                    for q in e.atoms(sympy.Mod, sympy.floor):
                        need.update(of(q))

    walk(body)
    return need


def _index_exprs(x):
    """The sympy expressions in a plan node's fields (its refs' starts, indices and offsets),
    nested bodies excluded (the walk visits them)."""
    if isinstance(x, sympy.Basic):
        yield x
    elif isinstance(x, (tuple, list)):
        for y in x:
            yield from _index_exprs(y)
    elif hasattr(x, "__dataclass_fields__") and not isinstance(x, (type, P.Loop, P.If)):
        for f in x.__dataclass_fields__:
            yield from _index_exprs(getattr(x, f))


def _static_where_needed(body, need: set[str] | None = None) -> tuple:
    """The classic plan with the loops of :func:`_trace_time_loop_vars` made static."""
    need = _trace_time_loop_vars(body) if need is None else need
    out = []
    for n in body:
        if isinstance(n, P.Loop):
            kind = P.LoopKind.STATIC if n.var in need else n.kind
            n = replace(n, kind=kind, body=_static_where_needed(n.body, need))
        elif isinstance(n, P.If):
            n = replace(n, then=_static_where_needed(n.then, need),
                        orelse=_static_where_needed(n.orelse, need))
        out.append(n)
    return tuple(out)


def render(plan: P.KernelPlan, dialect: str = "nki") -> str:
    if dialect not in API_VERSION:
        raise error(None, "dialect", "unknown dialect", dialect,
                    f"use one of {', '.join(sorted(API_VERSION))}")
    ops = _ops(dialect)
    lanes = dialect == "neuronxcc"     # classic_index.apply runs (LaneRefs)
    ragged_note = None
    plan = replace(plan, body=_per_stage(plan.body, lambda i, g: cse.collapse(g)))
    if dialect == "neuronxcc":
        plan, ragged_note = classic_masks(plan)
        plan = replace(plan, body=_static_where_needed(plan.body))
        plan = classic_index.apply(plan)
    _WHOLE.clear()
    if dialect == "neuronxcc":
        _WHOLE.update((n.name, None if ragged_note else tuple(sympy.sympify(x) for x in n.shape))
                      for n in _walk(plan.body) if isinstance(n, P.Alloc) and n.mem is P.Mem.SBUF)
    # tile sizes and block factors by name (last: every pass above reads plain numbers)
    taken = ({t.name for t in plan.inputs + plan.outputs} | {b.size for b in plan.binds}
             | {n for n, _ in plan.derived} | {n for n, _ in plan.params}
             | P.bound_names(plan.body) | {plan.name})
    mods, per = consts.module_names(plan.consts, taken)
    lane_taken = taken | {c.name for c in mods}
    _CONST_VALUES.clear()
    _CONST_VALUES.update((sympy.Symbol(c.name, integer=True, positive=True), sympy.Integer(c.value))
                         for c in mods)
    by_stage: dict[int, list] = {}
    for i, c in plan.consts:
        by_stage.setdefault(i, []).append(c)
    _FLOAT_PARAMS.clear()
    _FLOAT_PARAMS.update(n for n, v in plan.params if not isinstance(v, int))
    kname = checked(plan.name, "name")
    sha = plan.spec_sha256 if re.fullmatch(r"[0-9a-f]{64}", plan.spec_sha256 or "") else "unknown"
    rank_checks = [{"tensor": t.name, "rank": len(t.shape),
                    "msg": _fstr(f"{kname}: input {t.name} must have rank {len(t.shape)}, "
                                 f"got shape {{tuple({t.name}.shape)}}")}
                   for t in plan.inputs]
    binds = []
    for b in plan.binds:
        e = f"{b.tensor}.shape[{b.dim}]"
        if b.const != 0:
            e = f"({e} - ({py(b.const)}))"
        if b.coef != 1:
            e = f"{e} // {b.coef}"
        binds.append({"size": b.size, "expr": e})
    derived = [{"size": n, "expr": py(e)} for n, e in plan.derived]
    # size checks are asserts with a message: the documented kernels check shapes with
    # `assert` (nki 0.3: SDK v2.29.0 nki/get-started/about/index.rst; neuronxcc: S25
    # general/nki/examples/fused_mamba/mamba_nki_kernels.py), and no documented NKI program
    # raises inside @nki.jit
    cond = {P.Rule.MULTIPLE_OF: "{s} % {b} == 0", P.Rule.MIN: "{s} >= {b}",
            P.Rule.MAX: "{s} <= {b}"}
    checks = [{"cond": cond[c.rule].format(s=c.size, b=c.bound),
               "msg": _fstr(f"{kname}: size {c.size} = {{{c.size}}} breaks {c.rule.value} "
                            f"{c.bound}")}
              for c in plan.checks]
    shape_checks = []
    for t in plan.inputs:
        shp = "(" + ", ".join(py(s) for s in t.shape) + ("," if len(t.shape) == 1 else "") + ")"
        decl = ", ".join(py(s).replace(" ", "") for s in t.shape)
        shape_checks.append({"tensor": t.name, "shape": shp, "msg": _fstr(
            f"{kname}: input {t.name} has shape {{tuple({t.name}.shape)}}, expected "
            f"[{decl}] = {{{shp}}}")})
    known = ([t.name for t in plan.inputs] + [t.name for t in plan.outputs]
             + [n.name for n in plan.body if isinstance(n, P.Alloc)]
             + [b.size for b in plan.binds] + [n for n, _ in plan.derived]
             + [n for n, _ in plan.params])
    known = list(dict.fromkeys(known))
    head, stages = _stages(plan, known)
    calls = []
    helpers = []
    taken = set(known) | {st["name"] for st in stages}
    lane_taken |= taken
    for i, st in enumerate(stages):
        calls.append(INDENT + str(ops.comment(_view(st["comment"]))))
        calls.append(f"{INDENT}{st['name']}({', '.join(st['args'])})")
        heads: list[ahead.Helper] = []
        nodes = ahead.extract(st["nodes"], st["name"], taken, heads, tuple(st["args"]))
        # the stage's tile sizes and block factors by name (last: every pass above, the
        # classic masks included, reads plain numbers)
        namer = consts.Namer(by_stage.get(i, []), per.get(i, {}))
        nodes = namer.nodes(nodes)
        heads = [replace(h, body=namer.nodes(h.body)) for h in heads]
        for h in heads:
            if h.peeled:
                helpers.append({"name": h.name, "args": [*h.params, h.var, *h.extra],
                                "doc": doc_literal(_peeled_doc(h)),
                                "body": "\n".join(_body(h.body, ops, lane_taken, lanes)
                                                  or [INDENT + "pass"])})
                continue
            helpers.append({"name": h.name, "args": [*h.params, h.var],
                            "doc": doc_literal(
                                f"The head of the software pipeline for tile {h.var}: its loads"
                                f"{_stats(h.body)}. Issued for tile 0 before the loop, then "
                                f"for tile {h.var} + 1 while tile {h.var} finishes, so the DMA "
                                "queues never wait on compute."),
                            "body": "\n".join(_body(h.body, ops, lane_taken, lanes)
                                              or [INDENT + "pass"])})
        helpers.append({"name": st["name"], "args": st["args"],
                        "doc": doc_literal(_stage_doc(st["comment"].text, st["nodes"],
                                                      hw_target(plan.target).nc_version,
                                                      lanes))
                        .replace("\n" + INDENT + "\n", "\n\n"),
                        "body": "\n".join(_body(nodes, ops, lane_taken, lanes)
                                          or [INDENT + "pass"])})
    body = "\n".join(_lines(tuple(head), ops, 1) + calls)
    outs = [t.name for t in plan.outputs]
    k = {
        "spec_name": kname, "sha256": sha, "dialect": dialect,
        "api_version": API_VERSION[dialect], "target": checked(plan.target, "target"),
        "version": re.sub(r"[^0-9A-Za-z.+-]", "", plan.nkigen_version),
        "name": kname, "inputs": [t.name for t in plan.inputs], "doc": doc_literal(plan.doc),
        "params": [{"name": n, "value": repr(v) if isinstance(v, int) else repr(float(v))}
                   for n, v in plan.params],
        "rank_checks": rank_checks, "binds": binds, "derived": derived, "checks": checks,
        "shape_checks": shape_checks, "body": body, "helpers": helpers,
        "returns": outs[0] if len(outs) == 1 else ", ".join(outs),
        "consts": [{"name": c.name, "value": c.value,
                    "expr": (f"nl.tile_size.{c.tile_size}" if c.tile_size
                             else c.expr if c.expr else str(c.value)),
                    "why": re.sub(r"[^\x20-\x7e]", "?", c.why)} for c in mods],
        "ragged_note": None if ragged_note is None else re.sub(r"[^\x20-\x7e]", "?", ragged_note),
    }
    src = _env().get_template(f"{dialect}/kernel.j2").render(k=k)
    # the source must be Python: compiled (parse and code generation, stricter than a parse
    # alone and cheaper than building the ast objects), then dropped
    compile(src, f"<{kname}>", "exec", dont_inherit=True)
    return src
