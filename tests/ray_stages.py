"""Fake stage variants for tests/test_ray.py (no test functions here), importable by name in Ray
worker processes (the test module puts this folder on their PYTHONPATH).

The marker files live in the folder named by the environment of the spec's own parent folder, so
the workers (local Ray: the same file system) and the test see the same files.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from test_build_fakes import fake_generate


def generate_killing_once(spec, target, dialect, schedule):
    """Kill this worker process outright (SIGKILL) the first time kernel 'victim' is built: a
    lost worker. The marker file next to the spec says it happened."""
    if spec.name == "victim":
        marker = Path(spec.path).parent / "killed-once"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
    return fake_generate(spec, target, dialect, schedule)


def generate_killing_always(spec, target, dialect, schedule):
    """Kill the worker every time kernel 'victim' is built, counting the attempts."""
    if spec.name == "victim":
        with open(Path(spec.path).parent / "attempts", "a") as f:
            f.write("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_generate(spec, target, dialect, schedule)


def generate_slow(spec, target, dialect, schedule):
    """Kernels named 'slow*' take 60 s (they are meant to be cancelled); a marker file says
    each one started, another that it finished."""
    if spec.name.startswith("slow"):
        folder = Path(spec.path).parent
        (folder / f"started-{spec.name}").write_text("")
        time.sleep(60)
        (folder / f"finished-{spec.name}").write_text("")
    return fake_generate(spec, target, dialect, schedule)


def quick() -> int:
    """A trivial task: it runs only when a CPU of the Ray instance is free."""
    return os.getpid()
