"""Stage: library (one spec on a remote worker). Spec bytes -> a built unit as content.

A Ray worker (:class:`nkigen.library.executor.RayExecutor`) may run on another machine: it can
neither read the driver's spec files nor write into the library being built. So the driver sends
the spec's bytes, the build configuration and a snapshot of the library's tuning cache; the
worker builds the unit (:func:`nkigen.library.unit.build_unit`) in a private temporary folder and
returns a :class:`DetachedUnit`: the unit's result, the bytes of every file it produced and the
tuning-cache files it added or changed. The driver checks each file against the sha256 the
result records (content-addressed), writes it into its own staging folder and merges the tuning
cache (:func:`merge_tune_file`); the library it assembles is byte-identical to a local build.

On Ray (``nested``) the worker is itself a Ray driver: the spec's tuning simulations and the
verification of each of its test cases run as Ray tasks of their own
(:func:`nkigen.library.unit.verify_case_task`), which Ray schedules on any free CPU of the
cluster, retries when their worker is lost and cancels with the unit's task; the unit's task keeps
loading, tuning's search, generation, lint, the invalid-size checks and the manifest entry.

A worker whose nkigen sources differ from the driver's (the cache key covers them) refuses the
unit with a located error instead of building a different kernel.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from nkigen.library.stages import Stages
from nkigen.library.unit import UnitConfig, UnitResult, build_unit

TUNE = "tune"
STAGE = "stage"


@dataclass(frozen=True)
class SpecBytes:
    """A picklable ``load_spec``: the spec's bytes read by the driver, shown under its path."""

    data: bytes
    shown: str
    load: object          # Stages.load_spec_bytes

    def __call__(self, path: object) -> object:
        return self.load(self.data, self.shown)  # type: ignore[operator]


@dataclass(frozen=True)
class DetachedUnit:
    result: UnitResult
    files: tuple[tuple[str, bytes], ...]      # path relative to the staging folder, bytes
    tune: tuple[tuple[str, bytes], ...]       # tuning-cache file name, bytes (new or changed)


def build_detached(data: bytes, path: str, rel: str, key: str, cfg: UnitConfig, stages: Stages,
                   guard: tuple[bool, bool], tune_files: dict[str, bytes],
                   sources: str, nested: bool = False) -> DetachedUnit:
    """Build one spec in a private folder and return everything it produced as content.

    ``sources``: the driver's :func:`nkigen.library.cache.package_hash`. ``nested``: this runs in
    a Ray task; its cases and tuning simulations become Ray tasks of their own."""
    from nkigen.library.cache import package_hash

    mine = package_hash()
    if mine != sources:
        return DetachedUnit(UnitResult(rel, key, "failed", diagnostics=(
            f"{path}: the Ray worker's nkigen is not the driver's (nkigen {cfg.version}, "
            f"sources sha256 {mine[:12]} on the worker, {sources[:12]} here); install the same "
            "nkigen on every node of the cluster",), loc_path=path), (), ())
    work = Path(tempfile.mkdtemp(prefix="nkigen-unit-"))
    try:
        tune_dir = work / TUNE
        tune_dir.mkdir()
        for name, content in tune_files.items():
            (tune_dir / name).write_bytes(content)
        if stages.load_spec_bytes is not None:
            stages = replace(stages, load_spec=SpecBytes(data, path, stages.load_spec_bytes))
        inner = None
        if nested:
            import ray

            from nkigen.library.executor import RayExecutor

            if ray.is_initialized():     # in a Ray task (never start a Ray instance here)
                inner = RayExecutor()    # this worker's Ray connection (not owned: left open)
        r = build_unit(path, rel, key, str(work / STAGE), replace(cfg, tune_cache=str(tune_dir)),
                       stages, guard, inner)
        files = tuple((f, (work / STAGE / f).read_bytes()) for f, _ in r.files) \
            if r.status == "built" else ()
        changed = []
        if tune_dir.is_dir():
            for p in sorted(tune_dir.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    content = p.read_bytes()
                    if tune_files.get(p.name) != content:
                        changed.append((p.name, content))
        return DetachedUnit(r, files, tuple(changed))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def place_files(unit: DetachedUnit, stage: Path) -> None:
    """Write a detached unit's files under ``stage``, each checked against its recorded sha256
    (raises ValueError for a file that does not match: the transfer corrupted it)."""
    want = dict(unit.result.files)
    for rel, content in unit.files:
        if want.get(rel) != hashlib.sha256(content).hexdigest():
            raise ValueError(f"{rel}: its content does not match the sha256 the worker recorded")
        p = stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    if {rel for rel, _ in unit.files} != set(want):
        raise ValueError("the worker did not return every file it recorded")


def merge_tune_file(path: Path, content: bytes, before: bytes | None) -> None:
    """Put a worker's tuning-cache file at ``path``. ``before``: the file as the worker got it.

    If ``path`` is still what the worker started from (or absent), the worker's file replaces
    it; if another unit changed it meanwhile, the candidates of both are kept (the same
    candidate has the same content-addressed result everywhere), written as the tuner writes."""
    current = path.read_bytes() if path.is_file() else None
    if current is None or current in (before, content):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return
    try:
        mine, theirs = json.loads(current), json.loads(content)
        if mine.get("meta") != theirs.get("meta"):
            raise ValueError("different cache identities")
        merged = {**mine.get("candidates", {}), **theirs.get("candidates", {})}
    except (ValueError, AttributeError):
        path.write_bytes(content)      # an unreadable file is replaced, as the tuner does
        return
    text = json.dumps({"meta": theirs["meta"], "candidates": merged}, indent=1,
                      sort_keys=True) + "\n"
    path.write_text(text)
