"""Stage: library. Specs -> a verified kernel library on disk.

Input: spec files and build options. Output: a directory with ``kernels/``, ``golden/``,
``tests/``, ``manifest.json`` and ``README.md``. Entry point:
:func:`nkigen.library.build.build`; one spec is built by :mod:`nkigen.library.unit`.
"""
