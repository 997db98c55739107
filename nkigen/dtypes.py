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
        """Round float64 values to this dtype and return them as float64 again."""
        import numpy as np

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
    }


_ITEMSIZE: dict[DType, int] = {   # bytes per element (checked against numpy in the tests)
    DType.float32: 4,
    DType.bfloat16: 2,
    DType.float16: 2,
    DType.float8_e4m3: 1,
    DType.float8_e5m2: 1,
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
    import numpy as np

    d = np.dtype(dt)
    for k, v in _np_dtypes().items():
        if v == d:
            return k
    raise KeyError(str(d))
