"""Spec file to a schema-valid positioned document (stage: load).

Input: a path (or text). Output: a :class:`~nkigen.frontend.yamlpos.Document` whose data passed
the JSON Schema, plus the sha256 of the file bytes; or NkigenError with every problem located.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nkigen.diagnostics import Loc, NkigenError, error
from nkigen.frontend.validate import validate
from nkigen.frontend.yamlpos import MAX_BYTES, Document, decode, parse_yaml


def read_bytes(path: str | Path) -> bytes:
    """A spec file's bytes, with clean errors for missing, unreadable or oversized paths."""
    shown = str(path)
    try:
        if os.path.isdir(path):
            raise error(Loc(shown), "", "is a directory, not a spec file", None,
                        "give a .yaml file, or a folder to `nkigen check`")
        if os.path.exists(path) and not os.path.isfile(path):
            raise error(Loc(shown), "", "is not a regular file", None, "give a .yaml spec file")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except NkigenError:
        raise
    except FileNotFoundError:
        raise error(Loc(shown), "", "no such file", None, "check the path") from None
    except PermissionError:
        raise error(Loc(shown), "", "cannot read the file (permission denied)", None,
                    "check its permissions") from None
    except OSError as e:
        raise error(Loc(shown), "", "cannot read the file", e.strerror or type(e).__name__,
                    "check the path") from None
    return raw


def load_document(raw: bytes, path: str) -> tuple[Document, str]:
    """Bytes to a schema-valid document and the bytes' sha256 (raises NkigenError)."""
    sha = hashlib.sha256(raw).hexdigest()
    doc = parse_yaml(decode(raw, path), path)
    problems = validate(doc)
    if problems:
        raise NkigenError(problems)
    return doc, sha
