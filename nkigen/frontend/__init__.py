"""The front end: spec file -> validated frozen IR (stages: load + parse).

    load_spec(path)            file bytes -> yamlpos (safe YAML with positions)
                               -> validate (JSON Schema, every problem at once)
                               -> parser (names, sizes, tensors, statements -> nkigen.ir.Spec)
                               -> checks (statement order, names in ranges/schedule/tests)

Both entry points raise :class:`~nkigen.diagnostics.NkigenError` carrying every diagnostic.
"""

from __future__ import annotations

from pathlib import Path

from nkigen.frontend.loader import load_document, read_bytes
from nkigen.frontend.parser import parse_spec
from nkigen.ir import Spec


def load_spec(path: str | Path) -> Spec:
    """Load, validate and parse one spec file; ``Spec.path`` is ``path`` as given."""
    shown = str(path)
    doc, sha = load_document(read_bytes(path), shown)
    return parse_spec(doc, sha)


def load_spec_text(text: str, path: str = "<string>") -> Spec:
    """The same for spec text (hashed as its UTF-8 bytes)."""
    doc, sha = load_document(text.encode("utf-8"), path)
    return parse_spec(doc, sha)


__all__ = ["load_spec", "load_spec_text"]
