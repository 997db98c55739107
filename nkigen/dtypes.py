"""Storage dtypes of the spec language and their NumPy / ml_dtypes equivalents (all stages)."""

from __future__ import annotations

from enum import Enum

import ml_dtypes
import numpy
import numpy as np


class DType(Enum):
    """A tensor's storage dtype; the value is the spec-language (and NKI) spelling."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float8_e4m3 = "float8_e4m3"
    float8_e5m2 = "float8_e5m2"

    @property
    def np(self) -> numpy.dtype:
        """The NumPy dtype used to store values of this dtype."""
        return _NP[self]

    @property
    def itemsize(self) -> int:
        return int(_NP[self].itemsize)

    @property
    def eps(self) -> float:
        """Machine epsilon (spacing at 1.0), used to derive test tolerances."""
        return float(_EPS[self])

    def round(self, x: numpy.ndarray) -> numpy.ndarray:
        """Round float64 values to this dtype and return them as float64 again."""
        return np.asarray(x, dtype=np.float64).astype(_NP[self]).astype(np.float64)


_NP: dict[DType, np.dtype] = {
    DType.float32: np.dtype(np.float32),
    DType.bfloat16: np.dtype(ml_dtypes.bfloat16),
    DType.float16: np.dtype(np.float16),
    DType.float8_e4m3: np.dtype(ml_dtypes.float8_e4m3),    # NKI float8_e4m3: IEEE-style, max 240
    DType.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
}

_EPS: dict[DType, float] = {
    DType.float32: 2.0**-23,
    DType.bfloat16: 2.0**-7,
    DType.float16: 2.0**-10,
    DType.float8_e4m3: 2.0**-3,
    DType.float8_e5m2: 2.0**-2,
}


def from_numpy(dt: np.dtype | type) -> DType:
    """The DType whose storage is ``dt``; raises KeyError if there is none."""
    d = np.dtype(dt)
    for k, v in _NP.items():
        if v == d:
            return k
    raise KeyError(str(d))
