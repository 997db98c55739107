"""Identifier safety and fresh names for generated code.

Stage: plan (helper). Input: names from the spec IR; output: validated Python identifiers.
Spec names reach the generated source only through :func:`checked`, which re-validates them
(``str.isidentifier``, not a keyword, not a name the generated module relies on), and every
generated local comes from a :class:`Namer` that never collides with a spec name.
"""

from __future__ import annotations

import builtins
import keyword
import re

from nkigen.diagnostics import error

# Names the generated module itself uses; a spec name equal to one of them would shadow it.
RESERVED = frozenset({"nki", "nl", "nisa", "math", "np"}) | frozenset(dir(builtins))

_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def checked(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain ASCII identifier safe to emit, else raise NkigenError."""
    if (not isinstance(name, str) or not _SAFE.match(name) or not name.isidentifier()
            or keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED
            or name.startswith("__")):
        raise error(None, what, "not a safe Python identifier for generated code", repr(name),
                    "use letters, digits and underscores, not a keyword or builtin")
    return name


class Namer:
    """Hands out fresh identifiers that avoid the spec's names and each other."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset()):
        self._taken: set[str] = set(taken) | set(RESERVED)
        self._counts: dict[str, int] = {}

    def state(self) -> tuple[frozenset[str], dict[str, int]]:
        """A snapshot for :meth:`restore` (a lowering attempt that is thrown away)."""
        return frozenset(self._taken), dict(self._counts)

    def restore(self, state: tuple[frozenset[str], dict[str, int]]) -> None:
        self._taken, self._counts = set(state[0]), dict(state[1])

    def reserve(self, name: str) -> None:
        self._taken.add(name)

    def fresh(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", base) or "v"
        if base[0].isdigit():
            base = "v" + base
        n = self._counts.get(base, 0)
        while True:
            cand = base if n == 0 else f"{base}{n}"
            n += 1
            if cand not in self._taken and not keyword.iskeyword(cand):
                self._counts[base] = n
                self._taken.add(cand)
                return cand
