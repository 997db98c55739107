"""The JSON Schema of the spec language (stage: load), shipped as package data.

``kernel.schema.json`` (draft 2020-12) describes every field of a spec; editors that run the
YAML language server can validate specs with it via a modeline
``# yaml-language-server: $schema=<path>``. nkigen validates every spec against it on load.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

SCHEMA_FILE = "kernel.schema.json"


def schema_text() -> str:
    """The schema file's text, exactly as shipped."""
    return resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@cache
def kernel_schema() -> dict:
    """The schema as a dict (cached; do not mutate)."""
    return json.loads(schema_text())
