"""``nki.typing``: ``nt.tensor[[shape], dtype]`` placeholders and the ``mutable_tensor`` marker.

Stage: simulate (API layer).
"""

from __future__ import annotations

from nkigen.sim.errors import UnsupportedError
from nkigen.sim.runner import Placeholder, placeholder


class _TensorType:
    """``nt.tensor[[8192, 4096], nl.bfloat16]`` -> a cost-only input placeholder."""

    def __getitem__(self, item) -> Placeholder:
        shape, dtype = item
        return placeholder(shape, dtype)


tensor = _TensorType()


class mutable_tensor:  # noqa: N801 - public NKI spelling
    """Annotation marking a kernel parameter the kernel writes (must also be returned)."""


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"nki.typing.{name}")
