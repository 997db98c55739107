"""Stage: library (goldens). Arrays -> deterministic ``.npz`` bytes, and back.

Input: an ordered mapping of name -> NumPy array. Output: the bytes of a NumPy ``.npz`` archive
that :func:`numpy.load` reads, with every zip entry stored uncompressed and dated 1980-01-01, so
the same arrays always give the same bytes (``np.savez`` stamps entries with the current time).

Golden files hold the kernel inputs under ``input.<name>`` (float32: every storage dtype of the
spec language is exactly representable in it) and the float64 reference outputs under
``output.<name>``, stored as float32 when that is exact (the reference rounds each output to its
declared dtype, so it normally is), else as float64. Either way the values are the reference's.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def case_name(sizes: Mapping[str, int], order: list[str] | tuple[str, ...]) -> str:
    """``M256_K384_N700``: sizes in declaration ``order`` (others after, sorted)."""
    names = [n for n in order if n in sizes] + sorted(n for n in sizes if n not in order)
    return "_".join(f"{n}{int(sizes[n])}" for n in names)


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
    """Golden entries: inputs as float32, reference outputs losslessly (float32 if exact)."""
    out: dict[str, np.ndarray] = {}
    for name, a in inputs.items():
        out[f"input.{name}"] = np.asarray(a).astype(np.float32)
    for name, a in outputs.items():
        ref = np.asarray(a, dtype=np.float64)
        f32 = ref.astype(np.float32)
        exact = np.array_equal(f32.astype(np.float64), ref, equal_nan=True)
        out[f"output.{name}"] = f32 if exact else ref
    return out


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a golden file: (inputs as float32, expected outputs as float64), by name."""
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
