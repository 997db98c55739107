"""Storage dtypes of the spec language and their NumPy / ml_dtypes equivalents (all stages).

NumPy and ml_dtypes are imported on first use of :attr:`DType.np` (importing ml_dtypes costs
most of a second): checking a spec needs only the names, sizes and epsilons.
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy
    import numpy as np


class DType(Enum):
    """A tensor's storage dtype; the value is the spec-language (and NKI) spelling."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float8_e4m3 = "float8_e4m3"
    float8_e5m2 = "float8_e5m2"
    # spec language 1.1 integer dtypes (NKI: nl.int8, nl.uint8, nl.int32; S25
    # general/nki/api/nki.language.rst "Data types", SH nki/api/nki.language.rst)
    int8 = "int8"
    uint8 = "uint8"
    int32 = "int32"
    uint32 = "uint32"     # on-chip index tiles only (nc_find_index8 output), not a spec dtype

    @property
    def is_integer(self) -> bool:
        return self in _INT_RANGE

    @property
    def matmul_dtype(self) -> DType:
        """The on-chip dtype of this dtype as a TensorE operand: integers are widened to
        bfloat16 by the load (int8/uint8 values are exact in bfloat16's 8-bit significand);
        int32 to float32 (exact up to 2**24). Floats are themselves."""
        if self in (DType.int8, DType.uint8):
            return DType.bfloat16
        if self is DType.int32:
            return DType.float32
        return self

    @property
    def value_range(self) -> tuple[float, float]:
        """Lowest and largest finite (float) or representable (integer) value."""
        if self.is_integer:
            lo, hi = _INT_RANGE[self]
            return float(lo), float(hi)
        m = self.finite_max
        return -m, m

    @property
    def finite_max(self) -> float:
        """Largest finite (float) or largest representable (integer) value."""
        if self.is_integer:
            return float(_INT_RANGE[self][1])
        import ml_dtypes

        return float(ml_dtypes.finfo(self.np).max)

    @property
    def np(self) -> numpy.dtype:
        """The NumPy dtype used to store values of this dtype."""
        return _np_dtypes()[self]

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self]

    @property
    def eps(self) -> float:
        """Machine epsilon (spacing at 1.0), used to derive test tolerances."""
        return float(_EPS[self])

    def round(self, x: numpy.ndarray) -> numpy.ndarray:
        """Round float64 values to this dtype and return them as float64 again.

        Integers (spec language 1.1): round half to even, then saturate to the dtype's range
        (NaN becomes 0). The simulator's float-to-integer stores round the same way
        (``np.rint``); a kernel value outside the range is outside the spec's meaning (NKI
        documents no such conversion), so the build rejects a test case that leaves the range
        (:func:`nkigen.reference.first_integer_overflow`)."""
        import numpy as np

        if self.is_integer:
            lo, hi = _INT_RANGE[self]
            v = np.rint(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0))
            return np.clip(v, lo, hi)
        return np.asarray(x, dtype=np.float64).astype(self.np).astype(np.float64)


@cache
def _np_dtypes() -> dict[DType, np.dtype]:
    import ml_dtypes
    import numpy as np

    return {
        DType.float32: np.dtype(np.float32),
        DType.bfloat16: np.dtype(ml_dtypes.bfloat16),
        DType.float16: np.dtype(np.float16),
        DType.float8_e4m3: np.dtype(ml_dtypes.float8_e4m3),  # NKI float8_e4m3: IEEE-style, max 240
        DType.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
        DType.int8: np.dtype(np.int8),
        DType.uint8: np.dtype(np.uint8),
        DType.int32: np.dtype(np.int32),
        DType.uint32: np.dtype(np.uint32),
    }


_ITEMSIZE: dict[DType, int] = {   # bytes per element (checked against numpy in the tests)
    DType.float32: 4,
    DType.bfloat16: 2,
    DType.float16: 2,
    DType.float8_e4m3: 1,
    DType.float8_e5m2: 1,
    DType.int8: 1,
    DType.uint8: 1,
    DType.int32: 4,
    DType.uint32: 4,
}

_INT_RANGE: dict[DType, tuple[int, int]] = {
    DType.int8: (-128, 127),
    DType.uint8: (0, 255),
    DType.int32: (-2**31, 2**31 - 1),
    DType.uint32: (0, 2**32 - 1),
}

_EPS: dict[DType, float] = {
    DType.float32: 2.0**-23,
    DType.bfloat16: 2.0**-7,
    DType.float16: 2.0**-10,
    DType.float8_e4m3: 2.0**-3,
    DType.float8_e5m2: 2.0**-2,
    DType.int8: 0.0,        # integers are stored exactly: no rounding slack
    DType.uint8: 0.0,
    DType.int32: 0.0,
    DType.uint32: 0.0,
}


def from_numpy(dt: np.dtype | type) -> DType:
    """The DType whose storage is ``dt``; raises KeyError if there is none."""
    import numpy as np

    d = np.dtype(dt)
    for k, v in _np_dtypes().items():
        if v == d:
            return k
    raise KeyError(str(d))
