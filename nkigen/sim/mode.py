"""The simulator's reference switch: fast paths off, for the equivalence test.

Stage: simulate / cost (support). The simulator and the cost model have fast paths that change
*how* results are computed, never *what* they are (bit-identical outputs, identical traces and
timelines; ``tests/test_sim_equivalence.py`` proves it on every shipped spec and the public
kernels; tests/test_cost_compact.py for the compact trace and the per-kind cost path).
``NKIGEN_SIM_REFERENCE=1`` in the environment selects the plain reference path (full Instr
records, no per-shape check memos, the per-Instr schedule); it is read when a run or a schedule
starts. An internal switch for the test, not a user option.
"""

from __future__ import annotations

import os

ENV = "NKIGEN_SIM_REFERENCE"
FAST = True     # the current run's choice (``configure``, called when a run starts)


def reference() -> bool:
    """Whether the reference (plain) path is selected."""
    return os.environ.get(ENV) == "1"


def configure() -> bool:
    """Read the switch for the run that starts; returns FAST."""
    global FAST
    FAST = not reference()
    return FAST
