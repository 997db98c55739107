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
import signal
import sys
import threading
from typing import Any

_previous: Any = None
REDELIVER_S = 0.005         # the hook has long returned by then
_received = False           # a SIGINT arrived (see received())


def _hook(unraisable: Any) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        timer = threading.Timer(REDELIVER_S, _thread.interrupt_main)
        timer.daemon = True
        timer.start()
        return
    _previous(unraisable)


def _on_sigint(signum: int, frame: Any) -> None:
    global _received
    _received = True
    signal.default_int_handler(signum, frame)      # KeyboardInterrupt, as without us


def received() -> bool:
    """Whether a SIGINT arrived since :func:`install`: an import the interrupt landed in may
    surface it as another exception (NumPy reports an interrupted import of its C extension
    as an ``ImportError``), which the CLI then reports as the interrupt it was."""
    return _received


def install() -> None:
    """Route dropped interrupts back to the main thread, and note every SIGINT (idempotent)."""
    global _previous
    if sys.unraisablehook is not _hook:
        _previous = sys.unraisablehook
        sys.unraisablehook = _hook
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:      # not the main thread (an in-process caller): nothing to note
        pass
