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

from test_build_fakes import fake_evaluate, fake_generate, fake_inputs


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


def _task_id() -> str:
    import ray

    return ray.get_runtime_context().get_task_id() or ""


def generate_recording(spec, target, dialect, schedule):
    """Record the Ray task that generates the kernel (the spec's task) next to the spec."""
    (Path(spec.path).parent / f"task-{spec.name}-spec").write_text(_task_id())
    return fake_generate(spec, target, dialect, schedule)


def inputs_recording(spec, sizes, seed=None):
    """Record the Ray task that verifies each case (it makes the case's inputs)."""
    (Path(spec.path).parent / f"task-{spec.name}-N{sizes['N']}").write_text(_task_id())
    return fake_inputs(spec, sizes, seed)


def evaluate_off_at_16(spec, inputs, sizes):
    """The reference of case N=16 is off by one: only that case fails."""
    ref = fake_evaluate(spec, inputs, sizes)
    return {"y": ref["y"] + 1.0} if sizes["N"] == 16 else ref


def inputs_killing_once(spec, sizes, seed=None):
    """Kill the worker (SIGKILL) the first time case N=16 of kernel 'victim' is verified."""
    if spec.name == "victim" and sizes["N"] == 16:
        marker = Path(spec.path).parent / "case-killed-once"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
    return fake_inputs(spec, sizes, seed)


def inputs_slow(spec, sizes, seed=None):
    """Each case of a kernel named 'slow*' takes 60 s (meant to be cancelled); marker files say
    that the case started, and that it finished."""
    if spec.name.startswith("slow"):
        folder = Path(spec.path).parent
        (folder / f"started-{spec.name}-N{sizes['N']}").write_text("")
        time.sleep(60)
        (folder / f"finished-{spec.name}-N{sizes['N']}").write_text("")
    return fake_inputs(spec, sizes, seed)


def simulate_in_task(n: int) -> tuple[int, str]:
    """A stand-in for a tuning candidate's simulation: the Ray task it ran in."""
    return n, _task_id()


def tune_recording(spec, target, dialect, sizes, cache_dir=None, executor=None):
    """A tuner whose three "simulations" run on ``executor``; records the spec's task and the
    simulations' tasks next to the spec, and keeps the planner's defaults (None)."""
    folder = Path(spec.path).parent
    (folder / f"tune-{spec.name}-spec").write_text(_task_id())
    assert executor is not None and executor.remote, "the tuner got no Ray executor"
    got = sorted(r for _, r in executor.map_unordered(simulate_in_task, [(i,) for i in range(3)]))
    (folder / f"tune-{spec.name}-sims").write_text(" ".join(t for _, t in got))
    return None
