"""nkigen: declare NKI kernels in YAML index notation; check, generate, simulate and package them.

The pipeline, stage by stage, is listed in :mod:`nkigen.pipeline`. The Python API
(:mod:`nkigen.api`)::

    k = nkigen.compile("specs/softmax.yaml")   # -> nkigen.Kernel; k(x) runs it in the simulator
    lib = nkigen.load_library("build/library")
    lib = nkigen.build("specs/", "build/library", executor="ray")   # `nkigen build`, on Ray

Its names are imported on first use, so ``import nkigen`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nkigen.api import (
        Kernel,
        KernelReport,
        Library,
        LibraryKernel,
        build,
        compile,
        load_library,
    )
    from nkigen.diagnostics import Diagnostic, Loc, NkigenError

__version__ = "0.1.0"

_API = ("Kernel", "KernelReport", "Library", "LibraryKernel", "build", "compile",
        "load_library")

__all__ = ["Diagnostic", "Kernel", "KernelReport", "Library", "LibraryKernel", "Loc",
           "NkigenError", "__version__", "build", "compile", "load_library"]


_DIAGNOSTICS = ("Diagnostic", "Loc", "NkigenError")


def __getattr__(name: str) -> Any:
    # Nothing is imported with the package itself: the CLI's entry points catch a Ctrl-C only
    # once they run, so the package import before them must be (next to) instant.
    if name in _DIAGNOSTICS:
        from nkigen import diagnostics

        return getattr(diagnostics, name)
    if name in _API:
        from nkigen import api

        return getattr(api, name)
    raise AttributeError(f"module 'nkigen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_DIAGNOSTICS))
