"""Keep BLAS single-threaded while simulating (numerics mode).

Stage: simulate (support). A simulated kernel issues thousands of small matmuls (128x128 by
128x512); a multi-threaded OpenBLAS spends more time waking threads than computing on them, and
on a busy machine its spinning threads slow everything down. This finds the OpenBLAS that NumPy
loaded (Linux ``/proc/self/maps``) and sets its thread count to 1 for the duration of a run;
elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

_SUFFIXES = ("", "64_", "_64")
_PREFIXES = ("openblas", "scipy_openblas")
_FUNCS: tuple | None = None


def _libs() -> list:
    """The OpenBLAS libraries this process has loaded (NumPy's), as ctypes handles."""
    try:
        with open("/proc/self/maps") as f:
            paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln}
    except OSError:
        return []
    libs = []
    for path in sorted(paths):
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def symbol(name: str):
    """``name`` (a CBLAS function, e.g. ``cblas_sgemm``) from NumPy's OpenBLAS in its 64-bit
    integer build (NumPy's wheels: ``scipy_cblas_sgemm64_``), or None. Only the explicitly
    suffixed ILP64 symbol is taken: an unsuffixed one could have either integer width."""
    for lib in _libs():
        for full in (f"scipy_{name}64_", f"{name}64_"):
            fn = getattr(lib, full, None)
            if fn is not None:
                return fn
    return None


def _find() -> tuple:
    for lib in _libs():
        for pre in _PREFIXES:
            for suf in _SUFFIXES:
                get = getattr(lib, f"{pre}_get_num_threads{suf}", None)
                put = getattr(lib, f"{pre}_set_num_threads{suf}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    return (get, put)
    return ()


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    global _FUNCS
    if _FUNCS is None:
        _FUNCS = _find()
    if not _FUNCS:
        yield
        return
    get, put = _FUNCS
    n = get()
    put(1)
    try:
        yield
    finally:
        put(n)
