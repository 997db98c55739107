"""Stage: library. Specs -> a verified kernel library on disk.

Input: spec files and build options. Output: a directory with ``kernels/``, ``golden/``,
``tests/``, ``manifest.json`` and ``README.md`` (see :func:`nkigen.library.build.build`).
"""

from __future__ import annotations

from nkigen.library.build import BuildOptions, BuildReport, build

__all__ = ["BuildOptions", "BuildReport", "build"]
