"""Simulator dtypes: normalisation of user dtype spellings, NKI promotion rules, fill sentinels.

Stage: simulate. Storage dtypes are NumPy / ml_dtypes dtypes; float spellings follow
``nkigen.dtypes`` (NKI float8_e4m3 is IEEE-style, max 240, as ml_dtypes float8_e4m3;
float8_e4m3fn is the extended-range OCP format, max 448). tfloat32 is stored as
float32 (its rounding is not modelled). Promotion follows nki-reference.md section 1.8.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from nkigen.dtypes import DType
from nkigen.sim.errors import SimError

F32 = np.dtype(np.float32)
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
FP8_E4M3 = DType.float8_e4m3.np
FP8_E5M2 = DType.float8_e5m2.np
FP8_E4M3FN = np.dtype(ml_dtypes.float8_e4m3fn)
U8 = np.dtype(np.uint8)

BY_NAME: dict[str, np.dtype] = {
    "float32": F32, "fp32": F32, "tfloat32": F32,
    "bfloat16": BF16, "bf16": BF16,
    "float16": F16, "fp16": F16,
    "float8_e4m3": FP8_E4M3, "float8_e4m3fn": FP8_E4M3FN, "float8_e5m2": FP8_E5M2,
    "int32": np.dtype(np.int32), "uint32": np.dtype(np.uint32),
    "int16": np.dtype(np.int16), "uint16": np.dtype(np.uint16),
    "int8": np.dtype(np.int8), "uint8": U8, "bool": U8, "bool_": U8,
}
_LEGAL = set(BY_NAME.values())
NAMES: dict[np.dtype, str] = {}
for _n, _d in BY_NAME.items():
    NAMES.setdefault(_d, _n)

_FLOAT_RANK = {FP8_E4M3: 1, FP8_E4M3FN: 1, FP8_E5M2: 1, BF16: 2, F16: 2, F32: 3}


def as_dtype(x: object) -> np.dtype:
    """Normalise a dtype spelling (nl.bfloat16, np.float32, 'bfloat16', ...) or raise."""
    if isinstance(x, np.dtype) and x in _LEGAL:
        return x
    if isinstance(x, str):
        d = BY_NAME.get(x)
        if d is not None:
            return d
    else:
        try:
            d = np.dtype(x)  # type: ignore[call-overload]
        except TypeError:
            d = None
        if d is not None and d == np.dtype(bool):
            return U8
        if d is not None and d in _LEGAL:
            return d
    raise SimError("unsupported dtype", repr(x), "use one of " + ", ".join(sorted(BY_NAME)))


_NAME_BY_ID = {id(d): n for d, n in NAMES.items()}


def name(d: np.dtype) -> str:
    n = _NAME_BY_ID.get(id(d))
    return n if n is not None else NAMES.get(d, str(d))


_FILL: dict[int, np.ndarray] = {}


def filled(d: np.dtype, n: int) -> np.ndarray:
    """A new flat array of ``n`` sentinel values (copied from a cached template: fast)."""
    if n > 1 << 20:                         # big (HBM) tensors: one pass, no cached template
        return np.full(n, fill_value(d), dtype=d)
    t = _FILL.get(id(d))
    if t is None or t.size < n:
        t = _FILL[id(d)] = np.full(max(n, 1 << 16), fill_value(d), dtype=d)
    return t[:n].copy()


def fill(a: np.ndarray) -> None:
    """Overwrite the flat array ``a`` with the sentinel (the values :func:`filled` makes)."""
    n = a.size
    if n > 1 << 20:
        a.fill(fill_value(a.dtype))
        return
    d = a.dtype
    t = _FILL.get(id(d))
    if t is None or t.size < n:
        t = _FILL[id(d)] = np.full(max(n, 1 << 16), fill_value(d), dtype=d)
    a[...] = t[:n]


def is_float(d: np.dtype) -> bool:
    return d in _FLOAT_RANK


def is_int(d: np.dtype) -> bool:
    return d.kind in "iu"


def fill_value(d: np.dtype):
    """Sentinel for a new, uninitialised tensor: NaN for floats, an odd extreme for ints."""
    if is_float(d):
        return np.nan
    info = np.iinfo(d)
    return info.min if info.min < 0 else info.max


def scalar_dtype(x: object) -> np.dtype:
    """Weak Python scalars infer as int32 / float32 / uint8(bool); an explicitly typed NumPy
    scalar keeps its own dtype (``np.float16(2)`` stays float16) (S25 nki.api.shared.rst
    "Weakly Typed Scalar Type Inference", nki-reference.md section 1.8)."""
    if isinstance(x, np.generic) and not isinstance(x, np.bool_):
        d = np.dtype(x.dtype)
        if d in _LEGAL:
            return d
    if isinstance(x, (bool, np.bool_)):
        return U8
    if isinstance(x, (int, np.integer)):
        return np.dtype(np.int32)
    return F32


def promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """NKI binary-op output dtype (nki-reference.md 1.8)."""
    if a == b:
        return a
    fa, fb = is_float(a), is_float(b)
    if fa and not fb:
        return a
    if fb and not fa:
        return b
    if fa and fb:
        ra, rb = _FLOAT_RANK[a], _FLOAT_RANK[b]
        if ra != rb:
            return a if ra > rb else b
        return F32 if ra == 2 else BF16     # fp16+bf16 -> fp32; fp8 e4m3+e5m2 -> bf16
    # int, int
    if a.kind == b.kind:
        return a if a.itemsize >= b.itemsize else b
    s, u = (a, b) if a.kind == "i" else (b, a)
    if s.itemsize > u.itemsize:
        return s
    if u.itemsize >= 4:
        return F32                          # int32 + uint32 -> float32 (no int64 on HW)
    return np.dtype(f"int{u.itemsize * 16}")
