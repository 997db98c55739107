"""Jinja environment shared by every stage that renders templates (codegen, library).

Templates live in ``nkigen/templates/<folder>/`` and are shipped as package data. Rendering is
deterministic and strict: undefined names are errors (``StrictUndefined``), nothing is
HTML-escaped, and block tags leave no stray whitespace.
"""

from __future__ import annotations

import jinja2


def environment(folder: str = "") -> jinja2.Environment:
    """A new strict environment loading from ``nkigen/templates/<folder>``."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nkigen", f"templates/{folder}" if folder else "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
