"""Keep BLAS single-threaded while simulating (numerics mode) on a busy machine.

Stage: simulate (support). A simulated kernel issues thousands of small matmuls (128x128 by
128x512). On an idle machine OpenBLAS's threads speed them up (about 1.5x on 2 cores); on a busy
one its spinning threads fight the other processes and a run becomes many times slower. So when
the 1-minute load average already reaches the number of CPUs, this finds the OpenBLAS that NumPy
loaded (Linux ``/proc/self/maps``) and sets its thread count to 1 for the duration of a run;
otherwise, and on other systems, it does nothing. (OpenBLAS splits a matmul's output, not its
contraction, between threads, so results do not depend on the thread count.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

_SUFFIXES = ("", "64_", "_64")
_PREFIXES = ("openblas", "scipy_openblas")
_FUNCS: tuple | None = None


def _find() -> tuple:
    try:
        with open("/proc/self/maps") as f:
            paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln}
    except OSError:
        return ()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pre in _PREFIXES:
            for suf in _SUFFIXES:
                get = getattr(lib, f"{pre}_get_num_threads{suf}", None)
                put = getattr(lib, f"{pre}_set_num_threads{suf}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    return (get, put)
    return ()


def busy() -> bool:
    """True when the machine's 1-minute load average reaches its CPU count."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:
        return True


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    global _FUNCS
    if not busy():
        yield
        return
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
