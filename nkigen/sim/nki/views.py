"""NkiTensor view primitives of the current API: permute, broadcast, expand_dim, squeeze_dim,
reshape_dim, flatten_dims, rearrange, slice, select, vector_select and the view queries.

Stage: simulate (nki API layer). Doc: SH nki/api/nki/language/__init__.py ``NkiTensor`` (the
methods and their **Constraints**; NKI 0.5, SH release notes "New NkiTensor view primitives").
Each returns a view of the same storage (no data moves, no instruction); a broken constraint is
a located SimError quoting it. ``Tensor`` (nkigen.sim.tensor) delegates its methods here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nkigen.sim import state
from nkigen.sim.errors import SimError, UnsupportedError, as_int

if TYPE_CHECKING:
    from nkigen.sim.tensor import Tensor


def _t(t: Tensor, shape, strides, offset: int | None = None, bcast: bool | None = None):
    from nkigen.sim.tensor import Tensor
    return Tensor(t.alloc, t.offset if offset is None else offset, tuple(shape), tuple(strides),
                  t.bcast if bcast is None else bcast)


def _seq(v, api: str, what: str):
    """A tuple/list argument of a view primitive (SH nki/api/nki/language NkiTensor view
    primitives): None or a scalar is a located error, not a Python exception inside the
    simulator (rule nki.view_primitives)."""
    if not isinstance(v, (tuple, list)):
        raise SimError(f"{api}: {what} must be a tuple or list", repr(v))
    return v


def _dim(t: Tensor, dim: Any, api: str, extra: int = 0) -> int:
    n = len(t.shape) + extra
    d = as_int(dim, f"{api}: dim")
    if d < 0:
        d += n
    if not 0 <= d < n:
        raise SimError(f"{api}: dim out of range", f"dim {dim} for shape {list(t.shape)}")
    return d


def _not_partition(t: Tensor, d: int, api: str, what: str = "dim") -> None:
    if d == 0 and t.on_chip:
        raise SimError(f"{api}: on on-chip tensors {what} must not be 0 (the partition dim)",
                       list(t.shape))


def permute(t: Tensor, dims) -> Tensor:
    dims = tuple(as_int(d, "permute: a dim") for d in _seq(dims, "permute", "dims"))
    if sorted(dims) != list(range(len(t.shape))):
        raise SimError("permute: dims must be a permutation of range(t.ndim)",
                       f"{dims} for shape {list(t.shape)}")
    if t.on_chip and dims[0] != 0:
        raise SimError("permute: on-chip tensors keep the partition dim first (dims[0] == 0)",
                       dims)
    return _t(t, [t.shape[d] for d in dims], [t.strides[d] for d in dims])


def broadcast(t: Tensor, dim, size) -> Tensor:
    d = _dim(t, dim, "broadcast")
    if t.shape[d] != 1:
        raise SimError("broadcast: the dimension must have size 1",
                       f"dim {d} of shape {list(t.shape)}")
    _not_partition(t, d, "broadcast")
    size = as_int(size, "broadcast: size")
    if size < 1:
        raise SimError("broadcast: size must be positive", size)
    shape, strides = list(t.shape), list(t.strides)
    shape[d], strides[d] = size, 0
    return _t(t, shape, strides, bcast=True if size > 1 else t.bcast)


def expand_dim(t: Tensor, dim) -> Tensor:
    d = _dim(t, dim, "expand_dim", extra=1)
    _not_partition(t, d, "expand_dim")
    return _t(t, t.shape[:d] + (1,) + t.shape[d:], t.strides[:d] + (1,) + t.strides[d:])


def squeeze_dim(t: Tensor, dim) -> Tensor:
    d = _dim(t, dim, "squeeze_dim")
    if t.shape[d] != 1:
        raise SimError("squeeze_dim: the dimension must have size 1",
                       f"dim {d} of shape {list(t.shape)}")
    _not_partition(t, d, "squeeze_dim")
    if len(t.shape) == 1 or (t.on_chip and len(t.shape) == 2):
        raise SimError("squeeze_dim: the view would lose its last free dimension",
                       list(t.shape))
    return _t(t, t.shape[:d] + t.shape[d + 1:], t.strides[:d] + t.strides[d + 1:])


def reshape_dim(t: Tensor, dim, shape) -> Tensor:
    d = _dim(t, dim, "reshape_dim")
    parts = [as_int(x, "reshape_dim: a size") for x in _seq(shape, "reshape_dim", "shape")]
    if parts.count(-1) > 1:
        raise SimError("reshape_dim: at most one size may be -1", parts)
    if -1 in parts:
        known = math.prod(x for x in parts if x != -1)
        if known <= 0 or t.shape[d] % known:
            raise SimError("reshape_dim: the sizes do not divide the dimension",
                           f"{parts} for {t.shape[d]}")
        parts[parts.index(-1)] = t.shape[d] // known
    if math.prod(parts) != t.shape[d] or any(x <= 0 for x in parts):
        raise SimError("reshape_dim: prod(shape) must equal t.shape[dim]",
                       f"{parts} for {t.shape[d]}")
    if len(parts) > 1:
        _not_partition(t, d, "reshape_dim")
    s = t.strides[d]
    inner = [s * math.prod(parts[i + 1:]) for i in range(len(parts))]
    return _t(t, t.shape[:d] + tuple(parts) + t.shape[d + 1:],
              t.strides[:d] + tuple(inner) + t.strides[d + 1:])


def flatten_dims(t: Tensor, start_dim, end_dim) -> Tensor:
    a, b = _dim(t, start_dim, "flatten_dims"), _dim(t, end_dim, "flatten_dims")
    if a > b:
        raise SimError("flatten_dims: start_dim must not exceed end_dim", (a, b))
    _not_partition(t, a, "flatten_dims", "start_dim")
    for i in range(a, b):
        if t.shape[i + 1] != 1 and t.shape[i] != 1 and \
                t.strides[i] != t.strides[i + 1] * t.shape[i + 1]:
            raise SimError("flatten_dims: the dimensions must be contiguous in memory",
                           f"shape {list(t.shape)} strides {list(t.strides)}",
                           "flatten before permuting or slicing with a step")
    keep = [i for i in range(a, b + 1) if t.shape[i] != 1] or [b]
    return _t(t, t.shape[:a] + (math.prod(t.shape[a:b + 1]),) + t.shape[b + 1:],
              t.strides[:a] + (t.strides[keep[-1]],) + t.strides[b + 1:])


def slice_(t: Tensor, dim, start, end, step=1) -> Tensor:
    d = _dim(t, dim, "slice")
    start, end, step = (as_int(v, f"slice: {w}") for v, w in ((start, "start"), (end, "end"),
                                                               (step, "step")))
    if not 0 <= start < end <= t.shape[d]:
        raise SimError("slice: 0 <= start < end <= t.shape[dim]",
                       f"start {start}, end {end} on dim {d} of size {t.shape[d]}")
    if step < 1:
        raise SimError("slice: step must be >= 1", step)
    return t[(slice(None),) * d + (slice(start, end, step),)]


def select(t: Tensor, dim, index) -> Tensor:
    from nkigen.sim.tensor import Tensor
    d = _dim(t, dim, "select")
    if isinstance(index, Tensor):           # dynamic: a (1, 1) index tile read at run time
        _not_partition(t, d, "select (dynamic)")
        if index.size != 1 or index.dtype.kind not in "iu":
            raise SimError("select: a dynamic index is one integer element", repr(index))
        run = state.current()
        i = int(index.np().reshape(-1)[0]) if run.numerics else 0
        if not 0 <= i < t.shape[d]:
            raise SimError("select: dynamic index out of bounds",
                           f"index {i} on dim {d} of size {t.shape[d]}")
    else:
        i = as_int(index, "select: index")
        if not 0 <= i < t.shape[d]:
            raise SimError("select: 0 <= index < t.shape[dim]",
                           f"index {i} on dim {d} of size {t.shape[d]}")
    if d == 0 and t.on_chip:
        raise SimError("select: on on-chip tensors dim must not be 0 (the partition dim)",
                       list(t.shape), "slice the partition dim instead")
    return _t(t, t.shape[:d] + t.shape[d + 1:], t.strides[:d] + t.strides[d + 1:],
              offset=t.offset + i * t.strides[d])


def vector_select(t: Tensor, dim, vector_offset):
    if as_int(dim, "vector_select: dim") != 0:
        raise SimError("vector_select: dim must be 0", dim)
    if t.on_chip:
        raise SimError("vector_select: only HBM tensors", repr(t))
    if t.offset != 0 or t.strides[0] != math.prod(t.shape[1:]):
        raise UnsupportedError("vector_select on a sliced HBM view")
    from nkigen.sim.nki.indirect import vector_ap
    p = vector_offset.shape[0] if hasattr(vector_offset, "shape") else 0
    pattern = [[t.strides[0], p]] + [[s, n] for s, n in zip(t.strides[1:], t.shape[1:])]
    return vector_ap(t, pattern, 0, vector_offset=vector_offset, indirect_dim=0)


def rearrange(t: Tensor, src_pattern, dst_pattern, fixed_sizes=None) -> Tensor:
    """einops-style: split the grouped source dims, reorder by name, merge grouped dst dims."""
    sizes = dict(fixed_sizes or {})
    src = [p if isinstance(p, (tuple, list)) else (p,)
           for p in _seq(src_pattern, "rearrange", "src_pattern")]
    dst = [p if isinstance(p, (tuple, list)) else (p,)
           for p in _seq(dst_pattern, "rearrange", "dst_pattern")]
    if len(src) != len(t.shape):
        raise SimError("rearrange: the source pattern names every dimension",
                       f"{src_pattern} for shape {list(t.shape)}")
    names = [n for g in src for n in g]
    if sorted(names) != sorted(n for g in dst for n in g) or len(set(names)) != len(names):
        raise SimError("rearrange: source and destination name the same dimensions once",
                       f"{src_pattern} -> {dst_pattern}")
    v = t
    d = 0
    for g in src:
        if len(g) > 1:
            v = reshape_dim(v, d, tuple(sizes.get(x, -1) for x in g))
        d += len(g)
    v = permute(v, tuple(names.index(x) for g in dst for x in g))
    for d, g in enumerate(dst):
        if len(g) > 1:
            v = flatten_dims(v, d, d + len(g) - 1)
    return v


def is_contiguous(t: Tensor) -> bool:
    dims = list(zip(t.shape, t.strides))[1 if t.on_chip else 0:]
    want = 1
    for n, s in reversed(dims):
        if n != 1 and s != want:
            return False
        want *= n
    return True


def get_pattern(t: Tensor) -> list[list[int]]:
    return [[int(s), int(n)] for n, s in zip(t.shape, t.strides)]
