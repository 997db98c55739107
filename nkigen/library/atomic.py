"""Stage: library (file system safety). One build per OUT, an atomic swap, reported leftovers.

Input: the output folder OUT and the finished temporary library next to it. Output: OUT replaced
so that at every instant it is either the old or the new library, a lock that keeps a second
build out of OUT while one runs, and the paths of folders the build could not remove.

- :class:`OutLock`: an exclusive ``flock`` on ``.OUT.nkigen-lock`` next to OUT (Linux/macOS);
  a second build fails at once, naming the process that holds it. The lock file is removed on
  release; a build that finds the file replaced after locking it locks again (so a build that
  waited on a file another build has just removed cannot run beside a third).
- :func:`swap`: with ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15 on local file systems) the two
  folders trade places in one atomic step; elsewhere OUT is renamed to a backup and the new
  library into place with SIGINT/SIGTERM/SIGHUP deferred until both renames are done (and the
  backup put back if the second rename fails). A SIGKILL between those two renames is repaired
  by the next build (``build._recover``).
- :func:`remove_tree`: removes a folder and says so when it could not (an undeletable file).

``fault(step)`` is called between the steps of the swap; tests replace it to inject an
interrupt or an OS error at each step.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from nkigen.diagnostics import Diagnostic, Loc, NkigenError

try:
    import fcntl
except ImportError:          # pragma: no cover - Windows: no locking
    fcntl = None  # type: ignore[assignment]


def fault(step: str) -> None:
    """A no-op hook between the steps of :func:`swap` (tests inject failures here)."""


SIDE_NAME_MAX = 200     # characters of OUT's name kept in the names of the files beside it


def side_name(out: Path) -> str:
    """OUT's name as it appears in the lock, staging and backup names beside it
    (``.NAME.nkigen-lock``, ``.NAME.nkigen-tmp-PID``): the name itself, or, past
    :data:`SIDE_NAME_MAX` characters, its start and a hash of the whole, so those names stay
    within the OS's file-name limit (NAME_MAX 255 on Linux) whenever OUT's own name does
    (fuzz10: a 250-character OUT was refused, the lock name being too long)."""
    name = out.name
    if len(name) <= SIDE_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{name[:SIDE_NAME_MAX - 17]}-{digest}"


def lock_path(out: Path) -> Path:
    return out.parent / f".{side_name(out)}.nkigen-lock"


class OutLock:
    """An exclusive lock on OUT for the duration of a build; see the module docstring."""

    def __init__(self, out: Path):
        self.out = out
        self.path = lock_path(out)
        self.fd: int | None = None

    def __enter__(self) -> OutLock:
        if fcntl is None:   # pragma: no cover
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                raise NkigenError(Diagnostic(
                    Loc(str(self.out)), "-o/--out", "another nkigen build is writing this library",
                    got=f"{self.path} is locked by process {self._holder()}",
                    fix="wait for that build to finish, or build into another folder")) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)       # the lock file was removed and re-created meanwhile: lock again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return pid if pid.isdigit() else "(unknown)"

    def __exit__(self, *exc: object) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


# ---- the swap ------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False when the system cannot (then nothing changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP arriving inside the block are delivered when it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {}
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        old[s] = signal.getsignal(s)
        signal.signal(s, lambda n, _f: got.append(n))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        for n in dict.fromkeys(got):
            signal.raise_signal(n)


def swap(tmp: Path, out: Path, backup: Path) -> Path | None:
    """Put the library ``tmp`` in the place of ``out``; returns the path now holding the old
    library (to remove), or None. OUT is the old or the new library at every instant."""
    fault("start")
    if not os.path.lexists(out):
        os.rename(tmp, out)
        fault("done")
        return None
    if _exchange(tmp, out):
        fault("exchanged")
        return tmp
    if os.path.lexists(backup):
        shutil.rmtree(backup)
    with deferred_signals():
        os.rename(out, backup)
        try:
            fault("moved-old")
            os.rename(tmp, out)
        except BaseException:
            os.rename(backup, out)
            raise
    fault("placed-new")
    return backup


def remove_tree(path: Path) -> str | None:
    """Remove a folder; a warning naming it when something in it could not be removed."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        return (f"nkigen: warning: could not remove {path} (left over by the build); "
                "delete it by hand")
    return None
