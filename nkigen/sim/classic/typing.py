"""``neuronxcc.nki.typing``: ``nt.tensor[[shape], dtype]`` placeholders and ``mutable_tensor``.

Stage: simulate (classic API layer). The same objects as the current layer's ``nki.typing``.
"""

from __future__ import annotations

from nkigen.sim.errors import UnsupportedError
from nkigen.sim.nki.typing import mutable_tensor, tensor

__all__ = ["mutable_tensor", "tensor"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"neuronxcc.nki.typing.{name}")
