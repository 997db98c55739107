"""nkigen: declare NKI kernels in YAML index notation; check, generate, simulate and package them.

The pipeline, stage by stage, is listed in :mod:`nkigen.pipeline`.
"""

__version__ = "0.1.0"
