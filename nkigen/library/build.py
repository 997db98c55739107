"""Stage: library (orchestration). Spec files + options -> a verified kernel library, atomically.

Input: :class:`BuildOptions` (spec files or folders, the output folder, target, dialect, jobs).
Output: ``OUT/`` holding ``kernels/``, ``golden/``, ``tests/``, ``manifest.json``, ``README.md``,
``.nkigen-cache.json``, ``tune/`` (the tuning cache of ``schedule: auto`` specs) and the marker
``.nkigen-library``; and a :class:`BuildReport`.

Flow: discover specs -> cache keys -> build the changed specs (in worker processes with
``jobs > 1``, or as Ray tasks with ``executor="ray"``: :mod:`nkigen.library.executor`; one spec:
:mod:`nkigen.library.unit`; on a remote worker: :mod:`nkigen.library.detached`, whose files come
back as content checked against their sha256) into a temporary folder next to OUT -> carry the
unchanged kernels over from the previous library -> manifest, README, conftest -> swap the
temporary folder into place. If any spec fails, OUT is left exactly as it was (unless
``keep_going``: then the library of the good kernels replaces it). An error or interrupt at any
point removes the temporary folder and leaves OUT untouched; an OS error (a full disk, an
unwritable folder) is never a spec failure: it stops the build, ``keep_going`` or not.

Safety (nkigen.library.atomic): one build at a time per OUT (a lock next to it); the swap leaves
OUT the old or the new library at every instant; files carried over from the previous library
are re-checked after they are linked in, and symbolic links in OUT are never followed (a cached
file or ``tune/`` that is a link is not carried over). Worker processes ignore SIGINT (the parent
handles it) and exit when the parent dies. Folders the build could not remove are reported.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.library import atomic, cache, manifest, readme, suite
from nkigen.library.detached import build_detached, merge_tune_file, place_files
from nkigen.library.executor import (
    Executor,
    ExecutorChoice,
    TaskFailed,
    make_executor,
)
from nkigen.library.progress import Progress
from nkigen.library.stages import Stages, real_stages
from nkigen.library.unit import UnitConfig, UnitResult, build_unit, guard_policy

MARKER = ".nkigen-library"
TUNE_DIR = "tune"        # tuning cache (nkigen.tune) shipped with the library
MARKER_TEXT = "This folder is a kernel library written by `nkigen build`; a rebuild replaces it.\n"
SPEC_SUFFIXES = (".yaml", ".yml")

if TYPE_CHECKING:   # imported where the manifest is validated (not by a no-op build)
    import jsonschema


@dataclass(frozen=True)
class BuildOptions:
    specs: tuple[str, ...]
    out: str
    target: str | None = None
    dialect: str = "nki"
    jobs: int = 1
    keep_going: bool = False
    rebuild: bool = False            # ignore the previous library's cache
    progress: bool | None = None     # None: a progress line when stderr is a terminal
    lint: bool = True                # the lint stage on every generated kernel (nkigen.lint)
    # where the units run (nkigen.library.executor): "local" (a pool of ``jobs`` processes),
    # "ray" or "ray://HOST:PORT", a parsed ExecutorChoice, or an Executor the caller owns
    executor: str | ExecutorChoice | Executor | None = None


@dataclass(frozen=True)
class BuildReport:
    results: tuple[UnitResult, ...]   # in spec order
    written: bool                     # True when OUT was replaced
    up_to_date: bool = False          # True when OUT already was this library (nothing written)
    warnings: tuple[str, ...] = ()    # e.g. a leftover folder the build could not remove

    @property
    def failed(self) -> tuple[UnitResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def ok(self) -> bool:
        return not self.failed


# ---- inputs -------------------------------------------------------------------------------

def discover(specs: tuple[str, ...]) -> list[tuple[str, str]]:
    """(path as given, path recorded in the library) of every spec, sorted within folders.

    A folder contributes its ``*.yaml``/``*.yml`` files (not recursive), recorded relative to
    the folder; a file is recorded by its name.
    """
    found: list[tuple[str, str]] = []
    for arg in specs:
        p = Path(arg)
        if p.is_dir():
            try:
                files = sorted(f for f in p.iterdir()
                               if f.suffix in SPEC_SUFFIXES and f.is_file())
            except OSError as e:
                raise NkigenError(Diagnostic(Loc(arg), "SPECS", "cannot list the spec folder",
                                             got=e.strerror, fix="check its permissions")) from None
            found += [(str(f), f.relative_to(p).as_posix()) for f in files]
        elif p.is_file():
            found.append((str(p), p.name))
        else:
            raise NkigenError(Diagnostic(Loc(arg), "SPECS", "no such spec file or folder",
                                         fix="pass spec files or folders holding *.yaml specs"))
    if not found:
        raise NkigenError(Diagnostic(None, "SPECS", "no spec files found",
                                     got=" ".join(specs), fix="pass *.yaml files or their folder"))
    for path, rel in found:
        check_spec_name(path, rel)
    seen: dict[str, str] = {}
    unique = []
    for path, rel in found:
        real = os.path.realpath(path)
        if real not in seen:
            seen[real] = path
            unique.append((path, rel))
    return unique


def check_spec_name(path: str, rel: str) -> None:
    """Refuse a spec file name the library cannot record safely.

    The name is recorded in manifest.json, the README and the generated tests (always escaped
    there); it must be valid Unicode text (no undecodable bytes) and hold no backslash (a path
    separator on Windows, so ``manifest.json``'s relative paths forbid it). Other characters,
    quotes and newlines included, are allowed.
    """
    bad: str | None
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        bad = "bytes that are not UTF-8"
    else:
        bad = "a backslash" if "\\" in rel else None
    if bad is not None:
        raise NkigenError(Diagnostic(
            Loc(path.encode("utf-8", "backslashreplace").decode("utf-8")), "SPECS",
            f"a spec file name must not hold {bad}", got=ascii(rel),
            fix="rename the spec file"))


def check_out(out: Path, specs: list[tuple[str, str]], spec_args: tuple[str, ...]) -> None:
    """Refuse an output folder that a build must never replace."""
    def refuse(rule: str, fix: str) -> NkigenError:
        return NkigenError(Diagnostic(Loc(str(out)), "-o/--out", rule, fix=fix))

    real = Path(os.path.realpath(out))
    if real == Path(real.anchor) or real == Path(os.path.realpath(Path.home())):
        raise refuse("refusing to replace a filesystem root or the home folder",
                     "pass a dedicated folder such as build/library")
    cwd = Path(os.path.realpath(Path.cwd()))
    if real == cwd or real in cwd.parents:
        raise refuse("refusing to replace the current folder or one of its parents",
                     "pass a dedicated folder such as build/library")
    for arg in list(spec_args) + [p for p, _ in specs]:
        s = Path(os.path.realpath(arg))
        if real == s or real in s.parents:
            raise refuse(f"the output folder holds the specs ({arg})",
                         "write the library to a separate folder such as build/library")
    blocker = next((a for a in out.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise refuse(f"cannot be created: {blocker} is a file", "pass a path under a folder")
    if out.is_symlink():
        raise refuse("is a symbolic link", "pass the folder it points to, or a new folder")
    if out.exists():
        if not out.is_dir():
            raise refuse("exists and is not a folder", "pass a new or library folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise refuse(f"is a non-empty folder not written by nkigen (no {MARKER} marker)",
                         "pass a new folder, or an empty one, or a previous nkigen library")


# ---- the build ----------------------------------------------------------------------------

def build(options: BuildOptions, stages: Stages | None = None,
          on_result: Callable[[UnitResult], None] | None = None) -> BuildReport:
    """Build the library; raises NkigenError for usage problems (no specs, a dangerous OUT).

    ``stages`` defaults to the real pipeline; ``on_result`` is called as each spec finishes.
    """
    out = Path(options.out)
    specs = discover(options.specs)
    try:
        check_out(out, specs, options.specs)
    except OSError as e:    # e.g. OUT is an unreadable folder
        raise _os_error(out, e) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic.OutLock(out):
            return _build_locked(out, specs, options, stages, on_result)
    except OSError as e:   # a file system problem with OUT or next to it: OUT is left untouched
        raise _os_error(out, e) from None


def _build_locked(out: Path, specs: list[tuple[str, str]], options: BuildOptions,
                  stages: Stages | None,
                  on_result: Callable[[UnitResult], None] | None) -> BuildReport:
    cfg = UnitConfig(target=options.target, dialect=options.dialect)
    tmp = out.parent / f".{atomic.side_name(out)}.nkigen-tmp-{os.getpid()}"
    backup = out.parent / f".{atomic.side_name(out)}.nkigen-old-{os.getpid()}"
    progress = Progress(len(specs), enabled=options.progress)
    warnings = []
    try:
        warnings += _recover(out)
        previous = _previous(out)

        def prepare() -> None:   # the temporary folder, made only when something is built
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()          # (build() made OUT's parent before taking the lock)
            _copy_tune(out / TUNE_DIR, tmp / TUNE_DIR)   # the tuning cache travels with the library

        cfg = replace(cfg, tune_cache=str(tmp / TUNE_DIR))
        results = _run_units(specs, out, tmp, cfg, stages, previous, options.jobs, progress,
                             on_result, options.rebuild, prepare,
                             options.lint, options.executor)
        broken = next((r for r in results if r.os_error), None)
        if broken is not None:    # not a spec failure: stop, whatever keep_going says
            raise NkigenError(Diagnostic(
                Loc(str(out)), "-o/--out", "cannot write the library; it was left as it was",
                got=f"{broken.loc_path}: {broken.os_error}",
                fix="check that the output folder and its parent are writable and have space"))
        results = _check_duplicates(results)
        if _up_to_date(out, results, previous):
            return BuildReport(tuple(results), written=False, up_to_date=True,
                               warnings=tuple(warnings))
        if not tmp.is_dir():
            prepare()
        if any(r.status == "failed" for r in results) and not options.keep_going:
            return BuildReport(tuple(results), written=False, warnings=tuple(warnings))
        _assemble(out, tmp, results, options)
        old = atomic.swap(tmp, out, backup)
        if old is not None:
            w = atomic.remove_tree(old)
            warnings += [w] if w else []
        return BuildReport(tuple(results), written=True, warnings=tuple(warnings))
    finally:
        progress.close()
        for left in (tmp, backup):   # after an interrupt or error; OUT itself is always whole
            if os.path.lexists(left) and (left == tmp or out.is_dir()):
                atomic.remove_tree(left)


def _copy_tune(src: Path, dst: Path) -> None:
    """Copy the previous library's tuning cache: regular files only, never through a symbolic
    link (``OUT/tune`` linking to an outside folder must not pull that folder in)."""
    if src.is_symlink() or not src.is_dir():
        return
    for root, dirs, files in os.walk(src):      # os.walk does not follow links to folders
        rel = Path(root).relative_to(src)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            p = Path(root) / f
            if not p.is_symlink() and p.is_file():
                shutil.copy2(p, dst / rel / f)


def _os_error(out: Path, e: OSError) -> NkigenError:
    where = e.filename if isinstance(e.filename, str) else str(out)
    return NkigenError(Diagnostic(
        Loc(str(out)), "-o/--out", "cannot write the library",
        got=f"{where}: {e.strerror or e}",
        fix="check that the output folder and its parent are writable and have space"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(out: Path) -> list[str]:
    """Clean up after a build that was killed outright (SIGKILL, power loss).

    Removes its temporary folders; if it died between the two renames of the swap (OUT moved to
    its backup, the new library not yet in place), puts the old library back first. Returns a
    warning for each leftover folder that could not be removed.
    """
    warnings: list[str] = []
    if not out.parent.is_dir():
        return warnings
    for kind in ("old", "tmp"):
        side = glob.escape(atomic.side_name(out))
        for p in sorted(out.parent.glob(f".{side}.nkigen-{kind}-*")):
            pid = p.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or _alive(int(pid)) or not p.is_dir():
                continue
            if kind == "old" and not out.exists() and (p / MARKER).is_file():
                os.rename(p, out)
            else:
                w = atomic.remove_tree(p)
                warnings += [w] if w else []
    return warnings


def _previous(out: Path) -> tuple[dict[str, cache.CacheEntry], dict[str, dict]]:
    """The previous library's cache entries by key and manifest entries by kernel name."""
    if not (out / MARKER).is_file():
        return {}, {}
    entries = cache.read_cache(out)
    try:
        old = manifest.read((out / "manifest.json").read_text())
        kernels = {k["name"]: k for k in old["kernels"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}, {}
    return entries, kernels


def _up_to_date(out: Path, results: list[UnitResult], previous) -> bool:
    """True when OUT already is the library this build would write, so nothing is rewritten:
    every spec cached (same key: bytes, path, target, dialect, nkigen sources; files intact),
    exactly the previous library's kernels, and its library-level files in place."""
    old_cache, old_kernels = previous
    if not results or any(r.status != "cached" for r in results):
        return False
    if {r.key for r in results} != set(old_cache) or {r.name for r in results} != set(
            old_kernels) or len(results) != len(old_kernels):
        return False
    return all((out / f).is_file() for f in ("manifest.json", "README.md", "tests/conftest.py",
                                             cache.CACHE_FILE, MARKER))


def _run_units(specs, out, tmp, cfg, stages, previous, jobs, progress, on_result, rebuild,
               prepare=None, lint=True, executor=None):
    old_cache, old_kernels = previous
    results: list[UnitResult | None] = [None] * len(specs)
    todo = []
    sent: dict[int, bytes] = {}     # the bytes each key was computed from (remote workers)

    def done(i: int, r: UnitResult) -> None:
        results[i] = r
        progress.step(r.name or r.spec)
        if on_result:
            on_result(r)

    for i, (path, rel) in enumerate(specs):
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            done(i, UnitResult(rel, "", "failed", diagnostics=(
                f"{path}: cannot read the spec ({e.strerror})",), loc_path=path))
            continue
        nolint = b"" if lint else b"\0nolint"     # an unlinted kernel is not reused
        key = cache.spec_key(data + b"\0" + rel.encode() + nolint, cfg.target, cfg.dialect,
                             cfg.version)
        hit = None if rebuild else old_cache.get(key)
        if hit is not None and hit.name in old_kernels and cache.still_valid(out, hit):
            entry = dict(old_kernels[hit.name])
            done(i, UnitResult(rel, key, "cached", hit.name, entry, hit.files, (), 0.0, path))
        else:
            todo.append((i, path, rel, key))
            sent[i] = data

    if todo and prepare is not None:
        prepare()
    if todo and stages is None:
        stages = real_stages()   # imported only when something needs building
    if stages is not None and not lint:
        stages = replace(stages, lint=None)
    parts = tmp / ".parts"
    if not todo:
        return [r for r in results if r is not None]
    owned = not isinstance(executor, Executor)
    ex = make_executor(executor, jobs)
    try:
        if ex.remote:
            _run_remote(ex, todo, sent, parts, Path(cfg.tune_cache or tmp / TUNE_DIR), cfg,
                        stages, done)
        else:
            calls = [(path, rel, key, str(parts / str(i)), cfg, stages)
                     for i, path, rel, key in todo]
            with contextlib.closing(ex.map_unordered(build_unit, calls)) as finished:
                for n, r in finished:     # closing: an exception here stops the workers
                    i, path, rel, key = todo[n]
                    done(i, _failed(path, rel, key, r.reason) if isinstance(r, TaskFailed)
                         else r)
    finally:
        if owned:
            ex.close()
    return [r for r in results if r is not None]


def _failed(path: str, rel: str, key: str, reason: str) -> UnitResult:
    return UnitResult(rel, key, "failed", diagnostics=(
        f"{path}: building this spec failed in its worker: {reason}",), loc_path=path)


def _run_remote(ex: Executor, todo, sent: dict[int, bytes], parts: Path, tune_dir: Path,
                cfg: UnitConfig, stages: Stages,
                done: Callable[[int, UnitResult], None]) -> None:
    """The units on workers that may be other machines (nkigen.library.detached): each gets the
    spec's bytes and a snapshot of the tuning cache, and returns its files as content, which are
    checked against their sha256 and written here; workers never write into OUT or tmp."""
    snapshot = {p.name: p.read_bytes() for p in sorted(tune_dir.iterdir())
                if p.is_file() and not p.is_symlink() and not p.name.startswith(".")} \
        if tune_dir.is_dir() else {}
    shared = ex.share(snapshot)
    sources = cache.package_hash()
    calls = []
    for i, path, rel, key in todo:     # the very bytes the cache key was computed from
        calls.append((sent[i], path, rel, key, cfg, stages, guard_policy(path), shared, sources,
                      ex.nested))
    with contextlib.closing(ex.map_unordered(build_detached, calls)) as finished:
        for n, unit in finished:     # closing: Ctrl-C or an error here cancels the rest
            i, path, rel, key = todo[n]
            if isinstance(unit, TaskFailed):
                done(i, _failed(path, rel, key, unit.reason))
                continue
            try:
                place_files(unit, parts / str(i))
            except ValueError as e:
                done(i, _failed(path, rel, key, str(e)))
                continue
            for name, content in unit.tune:
                merge_tune_file(tune_dir / name, content, snapshot.get(name))
            done(i, unit.result)


def _name_loc(path: str) -> Loc:
    """Where the spec at ``path`` declares its ``name:`` (as ``nkigen check`` reports a
    duplicate), else the file alone (it changed or went away since it was built)."""
    from nkigen.diagnostics import NkigenError
    from nkigen.frontend import load_spec
    try:
        return load_spec(path).loc_of("name") or Loc(path)
    except (NkigenError, OSError, ValueError):
        return Loc(path)


def _check_duplicates(results: list[UnitResult]) -> list[UnitResult]:
    """Fail every spec whose kernel name another spec also defines, naming both files."""
    by_name: dict[str, list[UnitResult]] = {}
    for r in results:
        if r.status != "failed" and r.name:
            by_name.setdefault(r.name, []).append(r)
    out = []
    for r in results:
        same = by_name.get(r.name or "", [])
        if r.status != "failed" and len(same) > 1:
            others = ", ".join(o.loc_path for o in same if o is not r)
            d = Diagnostic(_name_loc(r.loc_path), "name",
                           "kernel names must be unique in a library",
                           got=f"'{r.name}' is also defined by {others}",
                           fix="rename one of the kernels")
            r = replace(r, status="failed", entry=None, files=(), diagnostics=(str(d),))
        out.append(r)
    return out


def _place(src: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not link:
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _assemble(out: Path, tmp: Path, results: list[UnitResult], options: BuildOptions) -> None:
    """Move built files and carry cached ones into ``tmp``; write the library-level files."""
    good = [r for r in results if r.status != "failed"]
    entries: list[cache.CacheEntry] = []
    for i, r in enumerate(results):
        if r.status == "failed":
            continue
        src_root = out if r.status == "cached" else tmp / ".parts" / str(i)
        for rel, digest in r.files:
            _place(src_root / rel, tmp / rel, link=r.status == "cached")
            if r.status == "cached" and cache.sha256_file(tmp / rel) != digest:
                raise NkigenError(Diagnostic(
                    Loc(str(out / rel)), "-o/--out",
                    "a file of the previous library changed while this build was running",
                    got="its sha256 no longer matches .nkigen-cache.json",
                    fix="run the build again (the library was left as it was)"))
        entries.append(cache.CacheEntry(r.name or "", r.key, r.spec, tuple(sorted(r.files))))
    shutil.rmtree(tmp / ".parts", ignore_errors=True)

    import jsonschema

    man = manifest.make([r.entry for r in good if r.entry is not None],
                        options.target, options.dialect)
    try:
        manifest.validate(man)
    except jsonschema.ValidationError as e:
        raise _manifest_error(man, results, e) from None
    files = {
        "manifest.json": manifest.dumps(man),
        "README.md": readme.render(man),
        "tests/conftest.py": suite.render_conftest(),
        cache.CACHE_FILE: cache.cache_json(sorted(entries, key=lambda e: e.name)),
        MARKER: MARKER_TEXT,
    }
    for rel, text in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


def _manifest_error(man: dict, results: list[UnitResult],
                    e: jsonschema.ValidationError) -> NkigenError:
    """A located error for a manifest that breaks its schema (a bug in nkigen, or a spec value
    the schema does not allow): names the spec of the offending kernel when there is one."""
    where = list(e.absolute_path)
    loc = None
    if len(where) >= 2 and where[0] == "kernels" and isinstance(where[1], int):
        kernel = man["kernels"][where[1]]
        loc = next((Loc(r.loc_path) for r in results if r.status != "failed" and r.loc_path
                    and (r.name == kernel.get("name") or r.spec == kernel.get("spec"))), None)
    field = "manifest" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)
    msg = " ".join(e.message.split())
    return NkigenError(Diagnostic(
        loc, field, "the library manifest breaks manifest.schema.json",
        got=msg if len(msg) <= 200 else msg[:197] + "...",
        fix="report this as an nkigen bug; the library was not written"))


__all__ = ["BuildOptions", "BuildReport", "build", "check_out", "discover"]
