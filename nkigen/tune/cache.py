"""Tuner stage 3 (memory): a disk cache of candidate costs.

One JSON file per (spec sha256, size bucket, target, dialect, nkigen version); inside, one entry
per candidate schedule key. Adding a candidate therefore invalidates nothing, re-tuning an
unchanged spec costs no simulation, and the folder can be shipped beside a kernel library.
Files are written atomically (temporary file + rename) with sorted keys, with the permissions
the umask gives new files (they ship inside kernel libraries).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from nkigen import __version__

CACHE_ENV = "NKIGEN_CACHE_DIR"        # nkigen's cache root; the tuner uses its tune/ folder
TUNE_CACHE_ENV = "NKIGEN_TUNE_CACHE"  # older, more specific: the tuner's folder itself


def default_dir() -> Path:
    """The tuner cache folder: ``$NKIGEN_TUNE_CACHE``, else ``$NKIGEN_CACHE_DIR/tune``, else
    ``$XDG_CACHE_HOME/nkigen/tune`` (an absolute XDG_CACHE_HOME only, as the XDG Base Directory
    spec says), else ``~/.cache/nkigen/tune``."""
    env = os.environ.get(TUNE_CACHE_ENV)
    if env:
        return Path(env)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env) / "tune"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "nkigen" / "tune"


def size_bucket(sizes: Mapping[str, int]) -> str:
    """Sizes rounded up to powers of two: nearby sizes share tuning results."""
    return ",".join(f"{k}={1 << max(0, int(v) - 1).bit_length()}" for k, v in sorted(sizes.items()))


class TuneCache:
    """Candidate results for one spec, size bucket, target and dialect."""

    def __init__(self, root: Path | None, spec_sha: str, bucket: str, target: str, dialect: str):
        self.root = root
        ident = json.dumps([spec_sha, bucket, target, dialect, __version__])
        self.key = hashlib.sha256(ident.encode()).hexdigest()[:32]
        self.meta = {"spec_sha256": spec_sha, "bucket": bucket, "target": target,
                     "dialect": dialect, "nkigen": __version__}
        self.entries: dict[str, dict] = {}
        self._dirty = False
        # (os.path.isfile: Path.is_file raises on a name the OS refuses, ENAMETOOLONG)
        if root is not None and os.path.isfile(self.path):
            try:
                data = json.loads(self.path.read_text())
                if data.get("meta") == self.meta:
                    self.entries = dict(data.get("candidates", {}))
            except (OSError, ValueError):
                self.entries = {}     # a corrupt cache file is ignored and rewritten

    @property
    def path(self) -> Path:
        assert self.root is not None
        return self.root / f"{self.key}.json"

    def get(self, candidate: str) -> dict | None:
        return self.entries.get(candidate)

    def put(self, candidate: str, result: Mapping) -> None:
        self.entries[candidate] = dict(result)
        self._dirty = True

    def save(self) -> None:
        if self.root is None or not self._dirty:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"meta": self.meta, "candidates": self.entries}, indent=1,
                          sort_keys=True) + "\n"
        # not mkstemp: its 0600 would ship with the library; O_EXCL + 0666 honours the umask
        while True:
            tmp = str(self.root / f".tmp-{secrets.token_hex(8)}.json")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
