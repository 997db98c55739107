"""Coverage of public current-API (``nki``) kernels by the nkigen simulator.

Usage: ``python benchmarks/public_kernels_run.py [--root DIR] [-k SUBSTR] [-v]``: runs each
case below (a public kernel, unmodified, on small random inputs of the shapes its docstring
asks for) under ``nkigen.sim.installed()`` and prints one line per case with its outcome class,
then the counts per class. Outcome classes:

* ``match``        ran, and the outputs agree with the NumPy reference written here
* ``ran``          ran; no reference (the public one is torch/jax, not installed)
* ``unsupported``  the simulator lacks an API name (UnsupportedError: which)
* ``reject``       the simulator refused the kernel (SimError: which rule); each expected
                   rejection (a documented error the public file demonstrates) is marked
                   ``reject (expected)``
* ``crash``        a Python exception raised inside nkigen (a simulator bug)
* ``kernel-error`` the kernel itself raised (assert, its own ValueError, ...): usually the
                   inputs here do not fit the kernel (a driver error) or an environment gap
* ``wrong``        ran, outputs differ from the reference
* ``skip``         the source needs a module that is not installed (torch, a collective)

The public sources stay outside the project. Extract them from the bare mirrors first::

    R=/tmp/pub9; mkdir -p $R/lib $R/ns $R/sdk
    git --git-dir=/work/.mirror/aws-neuron+nki-library/repo archive HEAD | tar -x -C $R/lib
    git --git-dir=/work/.mirror/aws-neuron+nki-samples/repo archive HEAD | tar -x -C $R/ns
    git --git-dir=/work/.mirror/aws-neuron+aws-neuron-sdk/repo archive HEAD nki | tar -x -C $R/sdk
    python benchmarks/public_kernels_run.py --root $R

The classic (``neuronxcc.nki``) public tests are run by benchmarks/classic_forms_public.py.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import textwrap
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Args = tuple[tuple, dict]


@dataclass(frozen=True)
class Case:
    """One public kernel call: where the kernel lives, how its inputs are made, and (when the
    public reference is torch or jax) a NumPy reference written here."""
    id: str
    src: str                                    # "sdk:nki/examples/x.py" or "lib:module.path"
    kernel: str
    args: Callable[[np.random.Generator], Args]
    ref: Callable[..., tuple] | None = None     # ref(*args, **kwargs) -> expected outputs
    tol: float = 1e-3
    expect_reject: str = ""                     # why the public file expects a refusal
    refusal: str = ""                           # ... and the words of the expected refusal
    outs: Callable[[tuple], tuple] = field(default=lambda o: o)   # pick compared outputs
    grid: tuple[int, ...] = ()                  # SPMD launch (LNC2: (2,))


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _mamba_ref(delta, u, A, B, C):
    b, c, s = delta.shape
    out = np.zeros((b, c, s), np.float32)
    for i in range(b):
        h = np.zeros((c, A.shape[1]), np.float64)
        for t in range(s):
            h = np.exp(delta[i, :, t, None] * A) * h + (delta[i, :, t] * u[i, :, t])[:, None] \
                * B[i, None, :, t]
            out[i, :, t] = h @ C[i, :, t]
    return (out,)


def _mm(lhsT, rhs, **_):
    return (lhsT.T.astype(np.float64) @ rhs,)


def _rope_ref(x, cos, sin, **_):
    h = x.shape[0] // 2
    x1, x2 = x[:h], x[h:]
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    return (np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s]),)


def _rope_hf_ref(q, k, q_out, k_out, cos, sin, **_):
    def rot(x):
        h = x.shape[-1] // 2
        r = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
        return x * cos[:, None] + r * sin[:, None]
    return rot(q), rot(k)


def _attn_ref(q, k, v, scale=1.0, causal_mask=True, **_):
    s = np.einsum("bqd,bdk->bqk", q.astype(np.float64), k) * scale
    if causal_mask:
        s = np.where(np.tril(np.ones(s.shape[1:], bool)), s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (np.einsum("bqk,bkd->bqd", e / e.sum(axis=-1, keepdims=True), v),)


def _dwconv_ref(img, filt, **_):
    s = filt.shape[-1]
    q = img.shape[-1] - s + 1
    out = sum(img[..., j:j + q] * filt[:, 0, 0, j].reshape(1, -1, 1, 1) for j in range(s))
    return (out,)


def _bf16(x: np.ndarray) -> np.ndarray:
    import ml_dtypes
    return x.astype(ml_dtypes.bfloat16)


def _nonzero_1d(r: np.random.Generator) -> np.ndarray:
    x = r.standard_normal((1, 256)).astype(np.float32)
    x[r.random((1, 256)) < 0.5] = 0
    return x


def _flatten_ref(x, f_len, out_len, offs, **_):
    out = np.full((out_len // f_len, f_len), -1, np.int64)
    blocks = x.reshape(x.shape[0], -1, f_len)
    for e, o in enumerate(offs):
        for j in range(blocks.shape[1]):
            if 0 <= o + j < out.shape[0]:
                out[o + j] = blocks[e, j]
    return (out.reshape(-1),)


def _router_ref(x, w, b, *_, **__):
    logits = x.T.astype(np.float64) @ w + b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    # router_pre_norm without scatter stores every expert's affinity, and the top-4 indices
    return logits, np.argsort(-p, axis=1, kind="stable")[:, :4], p


def _topk_config(shape: tuple[int, int], k: int, programs: int = 1):
    m = _lib("core.topk.rotational_topk")
    tc = m.create_topk_config(inp_shape=shape, inp_dtype=np.float32, k=k, sorted=True,
                              num_programs=programs)
    return m.prepare_rotational_constants(m.create_rotational_topk_config(inp_shape=shape,
                                                                          topk_config=tc))


def _conv1d_ref(x, w, b=None, stride=1, padding=(0, 0), dilation=1, **_):
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), padding))
    k = w.shape[0]
    n = (x.shape[2] - dilation * (k - 1) - 1) // stride + 1
    out = sum(np.einsum("bcl,co->bol", x[:, :, j * dilation:j * dilation + (n - 1) * stride + 1:
                                          stride], w[j]) for j in range(k))
    return (out + (0 if b is None else b[None, :, None]),)


def _ce_bwd_args(r: np.random.Generator) -> Args:
    logits = _f32(r, 64, 2048)
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    return ((logits, r.integers(0, 2048, 64).astype(np.int32), lse.astype(np.float32)),
            {"chunk_size": 2048, "dtype": np.float32})


def _ce_bwd_ref(logits, targets, lse, reduction="mean", **_):
    g = np.exp(logits - lse[:, None])
    g[np.arange(len(targets)), targets] -= 1
    return (g / len(targets) if reduction == "mean" else g,)


def _norm_ref(lnc: int, layer: bool = False):
    """rmsnorm_tkg / layernorm_tkg: [B, S, H] -> [128, B*S, H // 128] in the docstring's
    layout (each of the LNC halves of H transposed to [128, B*S, H / 128 / LNC])."""
    def ref(x, gamma, out, *_, eps=1e-6, **__):
        x = x.astype(np.float64).reshape(-1, x.shape[-1])
        if layer:
            x = x - x.mean(axis=1, keepdims=True)
        y = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps) * gamma.reshape(1, -1)
        n, h = y.shape
        parts = [y[:, i * h // lnc:(i + 1) * h // lnc].reshape(n, 128, -1).transpose(1, 0, 2)
                 for i in range(lnc)]
        return (np.concatenate(parts, axis=2),)
    return ref


def _ce_ref(logits, targets, **_):
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    return (lse - logits[np.arange(len(targets)), targets],)


SDK = "sdk:nki/examples/"
MM = SDK + "matrix_multiplication/matrix_multiplication_nki_kernels.py"
NSMM = "ns:src/nki_samples/tutorials/matrix_multiplication/matrix_multiplication_nki_kernels.py"
LIB = "lib:nkilib_src.nkilib."


def _mm_args(k: int, m: int, n: int, **kw) -> Callable[[np.random.Generator], Args]:
    return lambda r: ((_f32(r, k, m), _f32(r, k, n)), kw)


_LNC2 = (                # kernels that shard over nl.program_id (cumsum does not)
    Case("lib/cascaded_max", LIB + "core.max.cascaded_max", "cascaded_max",
         lambda r: ((_f32(r, 2, 2, 4096),), {}),
         lambda x: (x.max(axis=-1, keepdims=True), x.argmax(axis=-1)[..., None])),
    Case("lib/rope", LIB + "core.embeddings.rope", "RoPE",
         lambda r: ((_f32(r, 64, 1, 2, 128), _f32(r, 32, 1, 128), _f32(r, 32, 1, 128)),
                    {"lnc_shard": True}), lambda x, c, s, **_: _rope_ref(x, c, s), tol=1e-2),
    Case("lib/attention_cte", LIB + "core.attention.attention_cte", "attention_cte",
         lambda r: ((_f32(r, 2, 256, 64), _f32(r, 2, 64, 256), _f32(r, 2, 256, 64)),
                    {"scale": 0.125}), _attn_ref, tol=1e-2),
    Case("lib/cross_entropy_forward", LIB + "experimental.loss.cross_entropy",
         "cross_entropy_forward",
         lambda r: ((_f32(r, 64, 2048), r.integers(0, 2048, 64).astype(np.int32)),
                    {"chunk_size": 2048, "dtype": np.float32}),
         _ce_ref, tol=1e-2, outs=lambda o: o[:1]),
    Case("lib/qkv_cte", LIB + "core.qkv.qkv", "qkv",
         lambda r: ((_bf16(_f32(r, 1, 512, 512)), _bf16(_f32(r, 512, 384) * 0.05)), {}),
         lambda x, w: (x.astype(np.float32) @ w.astype(np.float32),), tol=3e-2),
    Case("lib/rotational_topk", LIB + "core.topk.rotational_topk", "rotational_topk",
         lambda r: ((_f32(r, 4, 1024), _topk_config((4, 1024), 8, 2)), {}),
         lambda x, c: (-np.sort(-x, axis=1)[:, :8],), outs=lambda o: o[:1]),
    Case("lib/indexed_flatten", LIB + "core.subkernels.indexed_flatten", "indexed_flatten",
         lambda r: ((r.integers(0, 9, (4, 256)).astype(np.int32), 16, 2048,
                     np.array([0, 16, 32, 200], np.int32)), {}), _flatten_ref),
)

ISA = "doc:nki/api/nki/isa/__init__.py:"
GUIDE = "doc:nki/get-started/"
TUT = "doc:nki/guides/tutorials/kernel-optimization.rst:"
SCHED = "doc:nki/guides/how-to-scheduling-apis.rst:"
MIG = "doc:nki/migration/index.rst:"
HBM_OUT = ("returns an nl.hbm (= private_hbm) tensor: 'Output tensors must use "
           "buffer=nl.shared_hbm. Using nl.hbm causes compilation failures' (SH release-notes "
           "NKI 0.3.0); the tutorial/guide conflicts with it")


SHARED = "kernel outputs must be allocated in nl.shared_hbm"


def _perm_rows(r: np.random.Generator, n: int, p: int = 128) -> np.ndarray:
    return r.permutation(n)[:p].astype(np.uint32).reshape(p, 1)


def _scatter_ref(src, idx, out):
    want = out.copy()
    want[idx[:, 0]] = src
    return (want,)


def _gather_t_ref(src, idx):
    flat = idx.T.reshape(-1)            # column-major flattening of (128, N) indices (SH)
    g = src[flat]                       # (F, ...) gathered rows
    return (np.transpose(g, (3, 1, 2, 0)) if g.ndim == 4 else g.T,)


DOC_CASES: tuple[Case, ...] = (
    Case("doc/isa.dma_copy.indirect_gather", ISA + "314", "indirect_gather_kernel",
         lambda r: ((_f32(r, 256, 64), _perm_rows(r, 256)), {}),
         lambda d, i: (d[i[:, 0]],)),
    Case("doc/isa.dma_copy.indirect_scatter", ISA + "343", "indirect_scatter_kernel",
         lambda r: ((_f32(r, 128, 64), _perm_rows(r, 256), np.zeros((256, 64), np.float32)),
                    {}), _scatter_ref),
    Case("doc/isa.nc_matmul.accumulate", ISA + "682", "nc_matmul_accumulate_kernel",
         _mm_args(512, 128, 512), _mm, tol=2e-3),
    Case("doc/isa.dma_transpose.gather", ISA + "914", "gather_transpose_kernel",
         lambda r: ((_bf16(_f32(r, 256, 128)), _perm_rows(r, 256)), {}), _gather_t_ref),
    Case("doc/isa.dma_transpose.gather_2d", ISA + "942", "gather_transpose_2d_kernel",
         lambda r: ((_bf16(_f32(r, 512, 128)),
                     r.permutation(512)[:256].astype(np.uint32).reshape(128, 2)), {}),
         _gather_t_ref),
    Case("doc/isa.dma_transpose.gather_4d", ISA + "976", "gather_transpose_4d_kernel",
         lambda r: ((_bf16(_f32(r, 512, 1, 2, 32)),
                     r.permutation(512)[:256].astype(np.uint32).reshape(128, 2)), {}),
         _gather_t_ref),
    Case("doc/isa.activate2", ISA + "1656", "activate2_scale_bias_kernel",
         lambda r: ((_f32(r, 128, 512),), {}),
         expect_reject="nisa.activate2 is NeuronCore-v4 only (SH activate2); trn2 refuses it",
         refusal="NeuronCore-v4"),
    Case("doc/dma-overview.exp_4x4096", GUIDE + "about/nki-dma-overview.rst:109",
         "tensor_exp_kernel_isa", lambda r: ((_bf16(_f32(r, 4, 4096)),), {}),
         lambda a: (np.exp(a.astype(np.float32)),), tol=2e-2),
    Case("doc/dma-overview.exp_128x128", GUIDE + "about/nki-dma-overview.rst:174",
         "tensor_exp_kernel_isa", lambda r: ((_bf16(_f32(r, 128, 128)),), {}),
         lambda a: (np.exp(a.astype(np.float32)),), tol=2e-2),
    Case("doc/language-guide.add", GUIDE + "nki-language-guide.rst:15",
         "nki_tensor_add_kernel", lambda r: ((_f32(r, 128, 512), _f32(r, 128, 512)), {}),
         lambda a, b: (a + b,)),
    Case("doc/language-guide.meta_loop", GUIDE + "nki-language-guide.rst:99",
         "example_kernel", lambda r: ((_f32(r, 512, 512).astype(np.float16),), {})),
    Case("doc/language-guide.relu_kernel", GUIDE + "nki-language-guide.rst:670",
         "relu_kernel", lambda r: ((_f32(r, 256, 512), np.zeros((256, 512), np.float32)), {})),
    Case("doc/quickstart.add", GUIDE + "quickstart-implement-run-kernel.rst:138",
         "nki_tensor_add_kernel", lambda r: ((_f32(r, 128, 512), _f32(r, 128, 512)), {}),
         lambda a, b: (a + b,)),
    Case("doc/scheduling.with_schedule", SCHED + "23", "scheduled",
         lambda r: ((np.abs(_f32(r, 128, 512)) + 1,), {}),
         lambda t: (1 / t + t + 1,), expect_reject=HBM_OUT, refusal=SHARED),
    Case("doc/scheduling.no_reorder", SCHED + "103", "loop",
         lambda r: ((_f32(r, 128, 64), _f32(r, 128, 64), _f32(r, 128, 64)), {}),
         lambda a, b, c: (np.exp(a), np.exp(b), np.exp(c)), expect_reject=HBM_OUT,
         refusal=SHARED),
    Case("doc/tutorial.matmul_single_tile", TUT + "40", "matrix_multiply_kernel",
         _mm_args(128, 128, 512), _mm, tol=2e-3, expect_reject=HBM_OUT, refusal=SHARED),
    Case("doc/tutorial.matmul_tiled", TUT + "203", "matrix_multiply_kernel",
         _mm_args(256, 256, 1024), _mm, tol=2e-3, expect_reject=HBM_OUT, refusal=SHARED),
    Case("doc/migration.sb_blocks_migrated", MIG + "1433", "sb_blocks_migrated",
         lambda r: ((_f32(r, 8, 128, 512),), {}), lambda x: (x,)),
    Case("doc/migration.sb_blocks_migrated_2", MIG + "1474", "sb_blocks_migrated",
         lambda r: ((_f32(r, 8, 128, 512),), {}), lambda x: (x,)),
    Case("doc/migration.sb_blocks_old_par_dim", MIG + "1474", "sb_blocks",
         lambda r: ((_f32(r, 8, 128, 512),), {}), lambda x: (x,),
         expect_reject="the NKI 0.2 form the guide migrates away from (nl.par_dim block "
                       "dimensions were removed: SH migration 'Block dimensions of tensors have "
                       "been removed')", refusal="nki.language.par_dim"),
)

CASES: tuple[Case, ...] = (
    Case("sdk/getting_started_baremetal", SDK + "getting_started_baremetal.py",
         "nki_tensor_add_kernel", lambda r: ((_f32(r, 128, 512), _f32(r, 128, 512)), {}),
         lambda a, b: (a + b,)),
    Case("sdk/tensor_addition", SDK + "tensor_addition/tensor_addition_nki_kernels.py",
         "nki_tensor_add", lambda r: ((_f32(r, 256, 1024), _f32(r, 256, 1024)), {}),
         lambda a, b: (a + b,)),
    Case("sdk/simulate_example", SDK + "simulate/nki_simulate_example.py", "add_kernel",
         lambda r: ((_f32(r, 128, 512), _f32(r, 128, 512)), {}), lambda a, b: (a + b,)),
    Case("sdk/index-case-1", SDK + "index-case-1.py", "tensor_split_kernel_",
         lambda r: ((_f32(r, 4, 5),), {}), lambda a: (a[:, 0::2], a[:, 1::2])),
    Case("sdk/index-case-3", SDK + "index-case-3.py", "tensor_maxpool_kernel_",
         lambda r: ((_f32(r, 2, 6, 6), 2), {}),
         lambda a, p: (a.reshape(2, 3, 2, 3, 2).max(axis=(2, 4)),)),
    Case("sdk/layout-pass", SDK + "layout-pass.py", "tensor_exp_kernel_",
         lambda r: ((_f32(r, 128, 512),), {}), lambda a: (np.exp(a),)),
    Case("sdk/layout-violation", SDK + "layout-violation.py", "tensor_exp_kernel_",
         lambda r: ((_f32(r, 256, 512),), {}), lambda a: (np.exp(a),),
         expect_reject="the file shows a 256-partition tile, which NKI refuses",
         refusal="partition dim exceeds 128"),
    Case("sdk/transpose2d", SDK + "transpose2d/transpose2d_nki_kernels.py",
         "tensor_transpose2D_kernel_",
         lambda r: ((np.arange(60, dtype=np.int8).reshape(5, 12), (3, 4)), {}),
         lambda a, s: (a.reshape(5, 3, 4).transpose(0, 2, 1).reshape(5, 12),)),
    Case("sdk/average_pool2d", SDK + "average_pool2d/average_pool2d_nki_kernels.py",
         "tensor_avgpool_kernel",
         lambda r: ((np.arange(72, dtype=np.float16).reshape(2, 6, 6), 2), {}),
         lambda a, p: (a.astype(np.float32).reshape(2, 3, 2, 3, 2).mean(axis=(2, 4)),)),
    *(Case(f"sdk/mamba_{v}", SDK + "fused_mamba/mamba_nki_kernels.py", f"mamba_{v}",
           lambda r: ((np.abs(_f32(r, 1, 128, 512)) * 0.1, _f32(r, 1, 128, 512),
                       -np.abs(_f32(r, 128, 2)), _f32(r, 1, 2, 512), _f32(r, 1, 2, 512)), {}),
           _mamba_ref, tol=2e-3) for v in ("v1", "v2", "v3")),
    *(Case(f"{tag}/matmul_{name}", src, f"nki_matmul_{name}_", mk, _mm, tol=2e-3)
      for tag, src in (("sdk", MM), ("ns", NSMM))
      for name, mk in (("basic", _mm_args(128, 64, 512)),
                       ("tiled", _mm_args(256, 256, 1024)),
                       ("hoist_load", _mm_args(256, 256, 1024)),
                       ("block_free_dimension", _mm_args(256, 256, 2048)),
                       ("fully_optimized", _mm_args(256, 256, 1024, TILES_IN_BLOCK_M=2,
                                                    TILES_IN_BLOCK_N=1, TILES_IN_BLOCK_K=2)))),
    Case("lib/cumsum", LIB + "core.cumsum.cumsum", "cumsum",
         lambda r: ((_f32(r, 130, 600),), {}), lambda x: (np.cumsum(x, axis=-1),), tol=1e-2),
    Case("lib/cumsum_3d", LIB + "core.cumsum.cumsum", "cumsum",
         lambda r: ((_f32(r, 4, 3, 256),), {}), lambda x: (np.cumsum(x, axis=-1),), tol=1e-2),
    Case("lib/cascaded_max", LIB + "core.max.cascaded_max", "cascaded_max",
         lambda r: ((_f32(r, 1, 1, 4096),), {}),
         lambda x: (x.max(axis=-1, keepdims=True), x.argmax(axis=-1)[..., None])),
    Case("lib/rope", LIB + "core.embeddings.rope", "RoPE",
         lambda r: ((_f32(r, 64, 1, 2, 128), _f32(r, 32, 1, 128), _f32(r, 32, 1, 128)), {}),
         _rope_ref, tol=1e-2),
    Case("lib/rope_hf", LIB + "core.embeddings.rope_hf", "rope_hf",
         lambda r: ((_f32(r, 1, 2, 128, 64), _f32(r, 1, 1, 128, 64),
                     np.zeros((1, 2, 128, 64), np.float32), np.zeros((1, 1, 128, 64),
                                                                     np.float32),
                     _f32(r, 1, 128, 64), _f32(r, 1, 128, 64)), {}), _rope_hf_ref, tol=1e-2),
    Case("lib/cross_entropy_forward", LIB + "experimental.loss.cross_entropy",
         "cross_entropy_forward",
         lambda r: ((_f32(r, 64, 2048), r.integers(0, 2048, 64).astype(np.int32)),
                    {"chunk_size": 2048, "dtype": np.float32}),
         _ce_ref, tol=1e-2, outs=lambda o: o[:1]),
    Case("lib/attention_cte", LIB + "core.attention.attention_cte", "attention_cte",
         lambda r: ((_f32(r, 1, 256, 64), _f32(r, 1, 64, 256), _f32(r, 1, 256, 64)),
                    {"scale": 0.125}), _attn_ref, tol=1e-2),
    Case("lib/attention_cte_noncausal", LIB + "core.attention.attention_cte", "attention_cte",
         lambda r: ((_f32(r, 2, 128, 64), _f32(r, 2, 64, 512), _f32(r, 2, 512, 64)),
                    {"causal_mask": False, "scale": 0.125}), _attn_ref, tol=1e-2),
    Case("lib/depthwise_conv1d", LIB + "experimental.conv.depthwise_conv1d",
         "depthwise_conv1d_implicit_gemm",
         lambda r: ((_f32(r, 1, 128, 1, 64), _f32(r, 128, 1, 1, 3)),
                    {"feature_group_count": 128}), _dwconv_ref,
         tol=1e-2),
    Case("lib/dynamic_elementwise_add", LIB + "experimental.dynamic_shapes."
         "dynamic_elementwise_add", "dynamic_elementwise_add",
         lambda r: ((_bf16(_f32(r, 256, 512)), _bf16(_f32(r, 256, 512)),
                     np.array([[2]], np.int32)), {}),
         lambda a, b, n: ((a.astype(np.float32) + b.astype(np.float32)),), tol=1e-2),
    Case("lib/find_nonzero_indices_with_count", LIB + "experimental.benchmark."
         "find_nonzero_indices_with_count", "find_nonzero_indices_with_count",
         lambda r: ((_nonzero_1d(r),), {})),
    Case("lib/find_nonzero_indices", LIB + "core.subkernels.find_nonzero_indices",
         "find_nonzero_indices",
         lambda r: ((np.where(r.random((256, 8)) < 0.3, 1.0, 0.0).astype(np.float32),), {})),
    Case("lib/indexed_flatten", LIB + "core.subkernels.indexed_flatten", "indexed_flatten",
         lambda r: ((r.integers(0, 9, (4, 256)).astype(np.int32), 16, 2048,
                     np.array([0, 16, 32, 200], np.int32)), {}), _flatten_ref,
         expect_reject="an LNC=2 kernel (sendrecv to the other core) launched as one program: "
                       "SH sendrecv is only allowed when LNC is enabled",
         refusal="two programs of an LNC=2 grid"),
    Case("lib/output_projection_tkg", LIB + "core.output_projection.output_projection_tkg",
         "output_projection_tkg",
         lambda r: ((_bf16(_f32(r, 128, 1, 2, 4)), _bf16(_f32(r, 256, 512))), {}),
         lambda a, w: (np.einsum("dbns,ndh->bsh", a.astype(np.float32),
                                 w.astype(np.float32).reshape(2, 128, 512)),), tol=3e-2),
    Case("lib/output_projection_cte",
         LIB + "core.output_projection.output_projection_cte.output_projection_cte",
         "output_projection_cte",
         lambda r: ((_bf16(_f32(r, 1, 2, 128, 512)), _bf16(_f32(r, 256, 512))), {}),
         lambda a, w: (np.einsum("bnds,ndh->bsh", a.astype(np.float32),
                                 w.astype(np.float32).reshape(2, 128, 512)),), tol=3e-2),
    Case("lib/qkv_tkg", LIB + "core.qkv.qkv", "qkv",
         lambda r: ((_bf16(_f32(r, 1, 4, 512)), _bf16(_f32(r, 512, 384) * 0.05)), {}),
         lambda x, w: (x.astype(np.float32) @ w.astype(np.float32),), tol=3e-2),
    Case("lib/qkv_cte", LIB + "core.qkv.qkv", "qkv",
         lambda r: ((_bf16(_f32(r, 1, 512, 512)), _bf16(_f32(r, 512, 384) * 0.05)), {}),
         lambda x, w: (x.astype(np.float32) @ w.astype(np.float32),), tol=3e-2),
    Case("lib/cross_entropy_backward", LIB + "experimental.loss.cross_entropy",
         "cross_entropy_backward", _ce_bwd_args, _ce_bwd_ref, tol=1e-2),
    Case("lib/cross_entropy_backward_copy", LIB + "experimental.loss.cross_entropy",
         "cross_entropy_backward",
         lambda r: (_ce_bwd_args(r)[0], {**_ce_bwd_args(r)[1], "inplace": False}),
         _ce_bwd_ref, tol=1e-2),
    Case("lib/conv1d", LIB + "experimental.conv.conv1d", "conv1d",
         lambda r: ((_f32(r, 2, 64, 100), _f32(r, 3, 64, 32) * 0.1, _f32(r, 32)), {}),
         _conv1d_ref, tol=2e-2),
    Case("lib/conv1d_strided", LIB + "experimental.conv.conv1d", "conv1d",
         lambda r: ((_f32(r, 1, 128, 64), _f32(r, 5, 128, 16) * 0.1),
                    {"stride": 2, "padding": (2, 2), "dilation": 2}),
         _conv1d_ref, tol=2e-2),
    *DOC_CASES,
    *(replace(c, id=c.id + "_lnc2", grid=(2,)) for c in _LNC2),
    Case("lib/rmsnorm_tkg", LIB + "core.subkernels.rmsnorm_tkg", "rmsnorm_tkg",
         lambda r: ((_f32(r, 2, 4, 512), _f32(r, 1, 512), np.zeros((128, 8, 4), np.float32)),
                    {}), _norm_ref(1), tol=1e-2),
    Case("lib/layernorm_tkg", LIB + "core.subkernels.layernorm_tkg", "layernorm_tkg",
         lambda r: ((_f32(r, 2, 4, 512), _f32(r, 1, 512), np.zeros((128, 8, 4), np.float32)),
                    {}), _norm_ref(1, layer=True), tol=1e-2),
    Case("lib/rmsnorm_tkg_shard_h_lnc2", LIB + "core.subkernels.rmsnorm_tkg", "rmsnorm_tkg",
         lambda r: ((_f32(r, 2, 4, 512), _f32(r, 1, 512), np.zeros((128, 8, 4), np.float32)),
                    {"shard_on_h": True}), _norm_ref(2), tol=1e-2, grid=(2,)),
    Case("lib/rmsnorm_tkg_lnc2", LIB + "core.subkernels.rmsnorm_tkg", "rmsnorm_tkg",
         lambda r: ((_f32(r, 4, 128, 512), _f32(r, 1, 512),
                     np.zeros((128, 512, 4), np.float32)), {}), _norm_ref(2), tol=1e-2,
         grid=(2,)),
    Case("lib/router_topk_lnc2", LIB + "core.router_topk.router_topk", "router_topk",
         lambda r: ((_f32(r, 256, 256), _f32(r, 256, 16) * 0.1, _f32(r, 1, 16) * 0.1,
                     np.zeros((256, 16), np.float32), np.zeros((256, 16), np.float32),
                     np.zeros((256, 4), np.uint32),
                     _lib("core.utils.common_types").RouterActFnType.SOFTMAX, 4, 0, 0),
                    {"shard_on_tokens": True}), _router_ref, tol=2e-2, grid=(2,)),
    Case("lib/qkv_tkg_lnc2", LIB + "core.qkv.qkv", "qkv",
         lambda r: ((_bf16(_f32(r, 1, 4, 512)), _bf16(_f32(r, 512, 384) * 0.05)), {}),
         lambda x, w: (x.astype(np.float32) @ w.astype(np.float32),), tol=3e-2, grid=(2,)),
    Case("lib/router_topk", LIB + "core.router_topk.router_topk", "router_topk",
         lambda r: ((_f32(r, 256, 64), _f32(r, 256, 16) * 0.1, _f32(r, 1, 16) * 0.1,
                     np.zeros((64, 16), np.float32), np.zeros((64, 16), np.float32),
                     np.zeros((64, 4), np.uint32),
                     _lib("core.utils.common_types").RouterActFnType.SOFTMAX, 4, 0, 0), {}),
         _router_ref, tol=2e-2),
    Case("lib/rotational_topk", LIB + "core.topk.rotational_topk", "rotational_topk",
         lambda r: ((_f32(r, 4, 1024), _topk_config((4, 1024), 8)), {}),
         lambda x, c: (-np.sort(-x, axis=1)[:, :8],), outs=lambda o: o[:1]),
    Case("lib/rmsnorm_quant", LIB + "core.rmsnorm.rmsnorm_quant", "rmsnorm_quant_kernel",
         lambda r: ((_bf16(_f32(r, 1, 4, 256)), _bf16(_f32(r, 256)),
                     _lib("core.rmsnorm.rmsnorm_quant").RmsNormQuantKernelArgs()), {})),
)


def _lib(module: str):
    """A module of nki-library (imported under the simulator; the driver's main put its
    source folder on sys.path)."""
    from nkigen import sim
    with sim.installed():
        return importlib.import_module("nkilib_src.nkilib." + module)


def _load(case: Case, root: Path):
    from nkigen import sim
    kind, _, where = case.src.partition(":")
    if kind == "lib":
        src = str(root / "lib" / "src")
        if src not in sys.path:
            sys.path.insert(0, src)
        with sim.installed():
            fn = getattr(importlib.import_module(where), case.kernel)
        # a sub-kernel without @nki.jit (router_topk): jitted here, as its own tests do
        return fn if isinstance(fn, sim.Kernel) else sim.jit(fn)
    if kind == "doc":
        return sim.load(_doc_block(root, where), case.kernel)
    return sim.load(root / kind / where, case.kernel)


_PREAMBLE = ("import nki\nimport nki.isa as nisa\nimport nki.language as nl\n"
             "import numpy as np\n\n")


def _doc_block(root: Path, where: str) -> Path:
    """The ``.. code-block:: python`` of an SDK document that starts at ``file:line``, written
    to ``ROOT/docblocks/`` after the imports the document's other blocks make (a block often
    shows only the kernel). Blocks stay under ROOT (outside the project)."""
    rel, _, line = where.rpartition(":")
    lines = (root / "sdk" / rel).read_text(encoding="utf-8").split("\n")
    i = int(line) - 1
    if "code-block:: python" not in lines[i]:
        raise ValueError(f"{where}: no code-block at that line")
    indent = len(lines[i]) - len(lines[i].lstrip())
    body = []
    for text in lines[i + 1:]:
        if text.strip() and len(text) - len(text.lstrip()) <= indent:
            break
        body.append(text)
    src = textwrap.dedent("\n".join(body)).rstrip()
    if src.count('"' * 3) % 2:          # a docstring example ends on its docstring's closing
        src = src[:-3]
    out = root / "docblocks" / (rel.replace("/", "_").replace(".", "_") + f"_{line}.py")
    out.parent.mkdir(exist_ok=True)
    out.write_text(_PREAMBLE + src.strip("\n") + "\n", encoding="utf-8")
    return out


_LAST_TB = [""]


def _in_nkigen(tb) -> bool:
    """The innermost frame of the traceback is nkigen code (not the kernel, not NumPy)."""
    frames = [f for f in traceback.extract_tb(tb) if "/numpy/" not in f.filename
              and "/ml_dtypes/" not in f.filename]
    return bool(frames) and "/nkigen/" in frames[-1].filename


def classify(case: Case, root: Path) -> tuple[str, str]:
    """(outcome class, detail) of one case; os.environ is restored afterwards (the SDK's
    tensor_addition example sets NEURON_PLATFORM_TARGET_OVERRIDE=trn1 when imported)."""
    import os
    env = dict(os.environ)
    try:
        return _classify(case, root)
    finally:
        os.environ.clear()
        os.environ.update(env)


def _classify(case: Case, root: Path) -> tuple[str, str]:
    from nkigen.sim.errors import SimError, UnsupportedError
    try:
        kernel = _load(case, root)
    except ModuleNotFoundError as e:
        return "skip", f"needs module {e.name}"
    except UnsupportedError as e:
        return "unsupported", str(e).splitlines()[0]
    except SimError as e:
        return "reject", str(e).splitlines()[0]
    except Exception as e:                              # noqa: BLE001 - classified
        last = traceback.extract_tb(e.__traceback__)[-1]
        kind = "crash" if _in_nkigen(e.__traceback__) else "kernel-error"
        return kind, f"loading: {type(e).__name__}: {str(e)[:160]} at " \
            f"{Path(last.filename).name}:{last.lineno}"
    args, kwargs = case.args(np.random.default_rng(0))
    if case.grid:
        kernel = kernel[case.grid]
    try:
        out = kernel(*args, **kwargs)
    except SimError as e:               # UnsupportedError too (a removed API: nl.par_dim)
        msg = str(e).splitlines()[0]
        if case.expect_reject and case.refusal in msg:
            return "reject (expected)", msg
        return ("unsupported" if isinstance(e, UnsupportedError) else "reject"), msg
    except Exception as e:                              # noqa: BLE001 - classified below
        tb = e.__traceback__
        last = traceback.extract_tb(tb)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        kind = "crash" if _in_nkigen(tb) else "kernel-error"
        _LAST_TB[0] = "".join(traceback.format_exception(e))
        return kind, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''} " \
            f"at {where}"
    if case.expect_reject:
        return "wrong", f"ran; expected a refusal ({case.expect_reject})"
    if case.ref is None:
        return "ran", ""
    got = case.outs(out if isinstance(out, tuple) else (out,))
    want = case.ref(*args, **kwargs)
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape and g.size == w.size:
            g = g.reshape(w.shape)
        if g.shape != w.shape:
            return "wrong", f"output {i}: shape {g.shape}, expected {w.shape}"
        err = float(np.max(np.abs(g - w) / (1 + np.abs(w)))) if g.size else 0.0
        if not math.isfinite(err) or err > case.tol:
            return "wrong", f"output {i}: max rel err {err:.3g} > {case.tol}"
    return "match", ""


def _imports(root: Path) -> Counter[str]:
    """Import each module of nki-library's source tree under the simulator."""
    from nkigen import sim
    out: Counter[str] = Counter()
    src = root / "lib" / "src"
    for f in sorted((src / "nkilib_src" / "nkilib").rglob("*.py")):
        parts = f.relative_to(src).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            with sim.installed():
                importlib.import_module(name)
            out["ok"] += 1
        except ModuleNotFoundError as e:
            out[f"needs {e.name}"] += 1
        except SyntaxError:
            out["syntax error in the public file"] += 1
        except Exception as e:                          # noqa: BLE001 - counted
            out[f"{type(e).__name__}"] += 1
            print(f"  import {name}: {type(e).__name__}: {str(e)[:160]}")
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/tmp/pub9", help="folder holding lib/, ns/, sdk/")
    p.add_argument("-k", default="", help="only cases whose id contains this")
    p.add_argument("-v", action="store_true", help="print the traceback of crashes")
    p.add_argument("--past-is", action="store_true",
                   help="measurement aid: skip the nki03.no_is check (what a kernel meets "
                        "after it); the simulator itself is unchanged")
    p.add_argument("--imports", action="store_true",
                   help="also import every nki-library module under the simulator and count "
                        "the outcomes (an API missing at import time shows here)")
    a = p.parse_args(argv)
    if a.past_is:
        from nkigen.sim import runner
        runner._identity_compare_line = lambda fn: 0    # type: ignore[attr-defined]
    root = Path(a.root)
    sys.path.insert(0, str(root / "lib" / "src"))
    counts: Counter[str] = Counter()
    for case in CASES:
        if a.k not in case.id:
            continue
        kind, detail = classify(case, root)
        counts[kind] += 1
        print(f"{case.id:40s} {kind:18s} {detail}", flush=True)
        if a.v and kind == "crash":
            print(_LAST_TB[0])
    print("counts:", dict(sorted(counts.items())))
    if a.imports:
        print("nki-library imports:", dict(sorted(_imports(root).items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
