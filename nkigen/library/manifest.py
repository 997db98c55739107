"""Stage: library (manifest). Kernel entries -> ``manifest.json`` text, validated.

Input: the manifest entries of every kernel in the library and the build configuration. Output:
deterministic JSON text (sorted keys, kernels sorted by name) that validates against
``nkigen/schema/manifest.schema.json`` (JSON Schema 2020-12).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import nkigen

FORMAT = 1
COST_MODEL_NOTE = ("latency_us, hfu and mbu are modeled by nkigen's cost model from the "
                   "simulator's instruction trace; they are estimates, not measurements")


@cache
def schema() -> dict:
    text = resources.files("nkigen").joinpath("schema/manifest.schema.json").read_text()
    return json.loads(text)


def make(entries: list[dict], target: str | None, dialect: str) -> dict:
    return {
        "format": FORMAT,
        "nkigen": nkigen.__version__,
        "target": target,
        "dialect": dialect,
        "cost_model": COST_MODEL_NOTE,
        "kernels": sorted(entries, key=lambda e: e["name"]),
    }


def validate(manifest: dict) -> None:
    """Raise ``jsonschema.ValidationError`` if ``manifest`` breaks the schema."""
    import jsonschema

    jsonschema.Draft202012Validator(schema()).validate(manifest)


def dumps(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read(text: str) -> dict:
    return json.loads(text)
