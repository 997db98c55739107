"""Stage: library (goldens). Arrays -> deterministic ``.npz`` bytes, and back.

Input: an ordered mapping of name -> NumPy array. Output: the bytes of a NumPy ``.npz`` archive
that :func:`numpy.load` reads, with every zip entry stored uncompressed and dated 1980-01-01, so
the same arrays always give the same bytes (``np.savez`` stamps entries with the current time).

Golden files hold the kernel inputs under ``input.<name>`` and the float64 reference outputs
under ``output.<name>``, each stored as float32 when that is exact, else as float64. Inputs of
every float storage dtype, and integer inputs within +-2**24, are float32-exact; an ``int32``
input beyond that (spec language 1.1) is not, and float32 would hand the generated suite other
inputs than the build verified (fuzz7: ``y[n, m] = x[m, n]`` with int32 values near 1e8 failed
its own golden test by up to 4). Either way the values are the ones the build used.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)
FIXED_CASE = "fixed"   # the name of the one case of a spec with no free size


def case_name(sizes: Mapping[str, int], order: list[str] | tuple[str, ...]) -> str:
    """``M256_K384_N700``: sizes in declaration ``order`` (others after, sorted); ``fixed`` for
    a spec whose sizes are all fixed (no free size: its one case has no size to name, and an
    empty name is no file name nor a manifest case name, ``^[A-Za-z0-9_]+$``)."""
    names = [n for n in order if n in sizes] + sorted(n for n in sizes if n not in order)
    return "_".join(f"{n}{int(sizes[n])}" for n in names) or FIXED_CASE


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of an uncompressed ``.npz`` holding ``arrays`` in the given order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            if a.dtype.kind not in "biuf":
                raise TypeError(f"golden array {name!r} has non-numeric dtype {a.dtype}")
            entry = io.BytesIO()
            np.lib.format.write_array(entry, a, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, entry.getvalue())
    return buf.getvalue()


def golden_arrays(
    inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Golden entries: inputs and reference outputs losslessly (float32 if exact, else
    float64)."""
    out: dict[str, np.ndarray] = {}
    for name, a in inputs.items():
        out[f"input.{name}"] = _lossless(np.asarray(a).astype(np.float64))
    for name, a in outputs.items():
        out[f"output.{name}"] = _lossless(np.asarray(a, dtype=np.float64))
    return out


def _lossless(wide: np.ndarray) -> np.ndarray:
    """``wide`` (float64) as float32 when that holds every value exactly, else as is."""
    f32 = wide.astype(np.float32)
    return f32 if np.array_equal(f32.astype(np.float64), wide, equal_nan=True) else wide


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a golden file: (inputs as stored, float32 or float64; expected outputs as
    float64), by name."""
    inputs: dict[str, np.ndarray] = {}
    outputs: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            kind, _, name = key.partition(".")
            if kind == "input":
                inputs[name] = z[key]
            else:
                outputs[name] = z[key].astype(np.float64)
    return inputs, outputs
