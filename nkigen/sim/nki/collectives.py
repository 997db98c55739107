"""``nki.collectives`` of the current API: importable, every collective raises when called.

Stage: simulate (nki 0.3 API layer). Doc: SH nki/api/nki/collectives/__init__.py (all_reduce,
all_gather, reduce_scatter, all_to_all, collective permutes, rank_id, ...). Collectives run
between NeuronCores of several ranks; the simulator runs one rank, so each call raises an
UnsupportedError naming the API. ``ReplicaGroup`` (a plain description of the rank groups) can
be built, so kernels that import it, or build one on a path the run does not take, load and run.
"""

from __future__ import annotations

from typing import Any

from nkigen.sim.errors import unsupported_stub
from nkigen.sim.nki.language import NKIObject

_WHY = "collectives run across ranks; the simulator runs one rank"

_APIS = ("all_reduce", "all_gather", "all_gather_v", "reduce_scatter", "all_to_all",
         "all_to_all_v", "collective_permute", "collective_permute_implicit",
         "collective_permute_implicit_reduce",
         "collective_permute_implicit_current_processing_rank_id", "rank_id")


class ReplicaGroup(NKIObject):
    """Groups of ranks taking part in a collective (SH collectives.ReplicaGroup)."""

    def __init__(self, replica_groups: Any = None) -> None:
        self.replica_groups = replica_groups

    def __repr__(self) -> str:
        return f"ReplicaGroup({self.replica_groups!r})"


for _n in _APIS:
    globals()[_n] = unsupported_stub(f"nki.collectives.{_n}", _WHY)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return unsupported_stub(f"nki.collectives.{name}", _WHY)
