"""Stage: library (incremental cache). Spec bytes + build options -> a cache key; cache file I/O.

Input: a spec file's bytes, the nkigen version, target, dialect, and the bytes of nkigen's own
sources (``*.py``, ``*.j2``, ``*.json`` under the package, hashed once per process). Output: a
sha256 hex key. A library records each kernel's key and produced files in
``OUT/.nkigen-cache.json``; a spec whose key is unchanged is not rebuilt: its files are carried
over from the previous library (after checking their sizes and hashes).

The key is content-based: touching a spec (mtime only) does not rebuild it, editing it does.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nkigen

CACHE_FILE = ".nkigen-cache.json"
CACHE_FORMAT = 1
_SOURCE_SUFFIXES = (".py", ".j2", ".json")


@cache
def package_hash() -> str:
    """sha256 over nkigen's package sources (relative path + bytes, sorted by path)."""
    root = Path(nkigen.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in _SOURCE_SUFFIXES and p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode())
            h.update(b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def spec_key(spec_bytes: bytes, target: str | None, dialect: str, version: str) -> str:
    """The cache key of one spec under one build configuration."""
    h = hashlib.sha256()
    for part in (hashlib.sha256(spec_bytes).hexdigest(), version, str(target), dialect,
                 package_hash()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One kernel of a previous build: its key, spec path and produced files with their hashes."""

    name: str
    key: str
    spec: str
    files: tuple[tuple[str, str], ...]   # (path relative to OUT, sha256), sorted

    def to_json(self) -> dict:
        return {"key": self.key, "spec": self.spec, "files": dict(self.files)}


def read_cache(out: Path) -> dict[str, CacheEntry]:
    """key -> entry of the library at ``out``; empty if there is none or it is unreadable."""
    try:
        data = json.loads((out / CACHE_FILE).read_text())
        if data.get("format") != CACHE_FORMAT:
            return {}
        entries = {}
        for name, e in data["kernels"].items():
            entries[e["key"]] = CacheEntry(name, e["key"], e["spec"],
                                           tuple(sorted(e["files"].items())))
        return entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def cache_json(entries: list[CacheEntry]) -> str:
    data = {"format": CACHE_FORMAT, "kernels": {e.name: e.to_json() for e in entries}}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def still_valid(out: Path, entry: CacheEntry) -> bool:
    """True when every file the entry produced is still in ``out`` with the recorded bytes, as a
    regular file inside ``out`` (a symbolic link, or a path through one, is never trusted)."""
    try:
        root = Path(os.path.realpath(out))
    except OSError:
        return False
    for rel, digest in entry.files:
        p = out / rel
        try:
            if p.is_symlink() or not p.is_file():
                return False
            if Path(os.path.realpath(p)) != root / rel or sha256_file(p) != digest:
                return False
        except (OSError, ValueError):
            return False
    return True
