"""Ctrl-C at start-up: an interrupt Python would drop is delivered again.

Stage: CLI (support). A SIGINT that lands while CPython runs a callback it cannot propagate from
(an import lock's weakref callback during start-up imports) is "ignored": Python prints its
traceback to stderr and the command carries on as if never interrupted. :func:`install` makes
such a ``KeyboardInterrupt`` interrupt the main thread again a moment later, from a short-lived
thread (raised inside the hook it would be dropped once more), so it surfaces in the main
thread's own code, where the CLI turns it into ``nkigen: interrupted`` and exit 130. Every other
unraisable exception goes to the hook that was there before. Imports nothing heavy: it runs
first.
"""

from __future__ import annotations

import _thread
import sys
import threading
from typing import Any

_previous: Any = None
REDELIVER_S = 0.005         # the hook has long returned by then


def _hook(unraisable: Any) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        timer = threading.Timer(REDELIVER_S, _thread.interrupt_main)
        timer.daemon = True
        timer.start()
        return
    _previous(unraisable)


def install() -> None:
    """Route dropped interrupts back to the main thread (idempotent)."""
    global _previous
    if sys.unraisablehook is not _hook:
        _previous = sys.unraisablehook
        sys.unraisablehook = _hook
