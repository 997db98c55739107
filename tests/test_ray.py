"""Tests of the Ray executor (nkigen.library.executor, nkigen.library.detached): a library built
through a local Ray instance (2 CPUs) is byte-identical to a local build, incremental, tuned the
same; a killed worker's task is retried; an interrupt cancels the remote work and leaves OUT
intact; without ray, --executor ray says how to install it.

The Ray tests share one Ray instance per module and skip (with the reason) when ray is not
installed; the others run everywhere.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import ray_stages
from test_build_fakes import FAKE, spec_text

import nkigen
from nkigen.cli import main
from nkigen.diagnostics import NkigenError
from nkigen.library import detached, executor
from nkigen.library.build import BuildOptions, build
from nkigen.library.cache import package_hash
from nkigen.library.unit import UnitConfig

# the slow tier (README): each test starts a Ray instance; under `-n auto` the workers start
# several at once, which is most of a minute of the default run. CI runs this file alone.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
# fast real specs: a reduction, a tuned softmax (schedule: auto) and a bf16 matmul
REAL_SPECS = ("row_mean.yaml", "softmax.yaml", "matmul_bf16.yaml")


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".nkigen-" in p.name)


def write_specs(root: Path, **specs: str) -> Path:
    d = root / "specs"
    d.mkdir(exist_ok=True)
    for fname, text in specs.items():
        (d / f"{fname}.yaml").write_text(text)
    return d


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance with 2 CPUs for the module, shut down after it. Its workers import
    the fake stages from this folder (PYTHONPATH is inherited by the processes it starts)."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'nkigen[ray]')")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT)] + ([old] if old else []))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 1024 * 1024)
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


# ---- without a cluster ---------------------------------------------------------------------

@pytest.mark.parametrize("text,kind,address", [
    ("local", "local", None), ("ray", "ray", None), ("ray://h:10001", "ray", "ray://h:10001"),
    ("ray://h", "ray", "ray://h"),   # the shortest address: one character after ray://
])
def test_executor_choice_accepted(text, kind, address):
    assert executor.parse_executor(text) == executor.ExecutorChoice(kind, address)


@pytest.mark.parametrize("text", ["ray://", "Ray", "ray:/h", "ray:h", "", "pool", "ray://a b"])
def test_executor_choice_refused(text):
    with pytest.raises(ValueError, match="'local', 'ray' or 'ray://HOST:PORT'"):
        executor.parse_executor(text)


def test_cli_refuses_unknown_executor(tmp_path, capsys):
    specs = write_specs(tmp_path, a=spec_text("alpha"))
    with pytest.raises(SystemExit) as e:
        main(["build", str(specs), "-o", str(tmp_path / "lib"), "--executor", "pool"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--executor" in err and "'local', 'ray' or 'ray://HOST:PORT'" in err
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize("command", ["build", "tune"])
def test_without_ray_the_executor_says_how_to_install_it(tmp_path, capsys, monkeypatch,
                                                         command):
    monkeypatch.setitem(sys.modules, "ray", None)     # `import ray` raises ImportError
    spec = ROOT / "specs" / REAL_SPECS[0]
    args = ([str(spec), "-o", str(tmp_path / "lib")] if command == "build" else [str(spec)])
    assert main([command, *args, "--executor", "ray"]) == 1
    err = capsys.readouterr().err
    assert "<command line>: --executor: the Ray executor needs the optional package 'ray'" in err
    assert "pip install 'nkigen[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "lib").exists() and leftovers(tmp_path) == []


def test_without_ray_the_api_raises_a_located_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(NkigenError, match=r"nkigen\[ray\]"):
        nkigen.build(str(ROOT / "specs" / REAL_SPECS[0]), tmp_path / "lib", executor="ray")


def _fake_ray(init_error: Exception):
    """A stand-in for the ray module whose ray.init fails as given (no cluster needed)."""
    import types

    def init(**kw):
        raise init_error

    return types.SimpleNamespace(is_initialized=lambda: False, init=init)


def test_unreachable_cluster_is_a_located_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(ConnectionError("connection timeout")))
    monkeypatch.setitem(sys.modules, "grpc", object())
    with pytest.raises(NkigenError) as e:
        executor.make_executor("ray://head:10001")
    assert str(e.value) == (
        "<command line>: --executor: cannot connect to the Ray cluster (got ray://head:10001: "
        "ConnectionError: connection timeout); check the address (ray://HOST:PORT of the "
        "head's Ray Client server) and that the cluster is up (`ray status` on the head)")


def test_ray_client_address_without_grpcio_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(AssertionError("not reached")))
    monkeypatch.setitem(sys.modules, "grpc", None)
    with pytest.raises(NkigenError, match=r"needs Ray Client \(grpcio\).*pip install "
                                          r"'nkigen\[ray\]'"):
        executor.make_executor("ray://head:10001")


def test_worker_with_other_nkigen_sources_refuses_the_unit(tmp_path):
    spec = write_specs(tmp_path, a=spec_text("alpha")) / "a.yaml"
    unit = detached.build_detached(spec.read_bytes(), str(spec), "a.yaml", "k",
                                   UnitConfig(None, "nki"), FAKE, (False, True), {}, "0" * 64)
    assert unit.result.status == "failed" and unit.files == ()
    d = unit.result.diagnostics[0]
    assert d.startswith(f"{spec}: the Ray worker's nkigen is not the driver's")
    assert package_hash()[:12] in d and "install the same nkigen on every node" in d


def test_tuning_worker_with_other_nkigen_sources_refuses_the_simulation():
    from nkigen.frontend import load_spec
    from nkigen.tune.measure import simulate_checked

    spec = load_spec(ROOT / "specs" / "row_mean.yaml")
    with pytest.raises(RuntimeError, match="the worker's nkigen is not the driver's"):
        simulate_checked("0" * 64, spec, "", {}, "trn2")


class _LostWorkers(executor.Executor):
    """An executor whose every call comes back failed (its worker lost after the retries)."""

    def map_unordered(self, fn, calls):
        for i, _ in enumerate(calls):
            yield i, executor.TaskFailed("its Ray worker was lost 4 times (WorkerCrashedError)")


def test_tuning_task_that_failed_is_a_located_error():
    from nkigen.frontend import load_spec
    from nkigen.tune import tune

    path = ROOT / "specs" / "matmul_bf16.yaml"
    spec = load_spec(path)
    with pytest.raises(NkigenError) as e:
        tune(spec, sizes={"M": 256, "K": 256, "N": 512}, cache_dir=None,
             executor=_LostWorkers())
    d = str(e.value.diagnostics[0])
    assert d.startswith(f"{path}:") and "a tuning candidate's simulation failed in its " \
        "worker (got its Ray worker was lost 4 times" in d


def test_detached_unit_returns_its_files_as_content(tmp_path):
    spec = write_specs(tmp_path, a=spec_text("alpha")) / "a.yaml"
    unit = detached.build_detached(spec.read_bytes(), str(spec), "a.yaml", "k",
                                   UnitConfig(None, "nki"), FAKE, (False, True), {},
                                   package_hash())
    assert unit.result.status == "built"
    assert [f for f, _ in unit.files] == [f for f, _ in unit.result.files]
    detached.place_files(unit, tmp_path / "stage")
    assert (tmp_path / "stage/kernels/alpha.py").read_bytes() == dict(unit.files)[
        "kernels/alpha.py"]
    bad = replace(unit, files=((unit.files[0][0], b"corrupted"),) + unit.files[1:])
    with pytest.raises(ValueError, match="does not match the sha256"):
        detached.place_files(bad, tmp_path / "stage2")


def test_tune_files_of_two_workers_are_merged(tmp_path):
    import json

    meta = {"spec_sha256": "s", "bucket": "N=8", "target": "trn2", "dialect": "nki",
            "nkigen": "0.1.0"}

    def text(cands):
        return (json.dumps({"meta": meta, "candidates": cands}, indent=1, sort_keys=True)
                + "\n").encode()

    p = tmp_path / "c.json"
    before = text({"a": {"legal": True}})
    p.write_bytes(before)
    detached.merge_tune_file(p, text({"a": {"legal": True}, "b": {"legal": False}}), before)
    assert p.read_bytes() == text({"a": {"legal": True}, "b": {"legal": False}})   # replaced
    detached.merge_tune_file(p, text({"a": {"legal": True}, "c": {"legal": True}}), before)
    assert p.read_bytes() == text({"a": {"legal": True}, "b": {"legal": False},
                                   "c": {"legal": True}})                          # merged


# ---- on a local Ray instance ---------------------------------------------------------------

def test_ray_build_is_byte_identical_to_local_and_incremental(tmp_path, ray_instance):
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in REAL_SPECS:
        shutil.copy(ROOT / "specs" / name, specs / name)
    local = build(BuildOptions((str(specs),), str(tmp_path / "local")))
    assert local.ok and local.written
    lib = nkigen.build(specs, tmp_path / "ray", executor="ray")   # the Python API, on Ray
    assert sorted(lib) == ["matmul_bf16", "row_mean", "softmax"]
    ref = snapshot(tmp_path / "local")
    assert any(k.startswith("tune/") for k in ref)        # the tuning cache travelled back
    assert snapshot(tmp_path / "ray") == ref
    assert ray_instance.is_initialized()                  # the caller's Ray is left running

    again = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"))
    assert again.up_to_date and not again.written
    (specs / "row_mean.yaml").write_text((specs / "row_mean.yaml").read_text() + "# edit\n")
    inc = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"))
    assert [r.status for r in inc.results] == ["cached", "built", "cached"]  # name order
    local_inc = build(BuildOptions((str(specs),), str(tmp_path / "local")))   # the same, here
    assert [r.status for r in local_inc.results] == ["cached", "built", "cached"]
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")
    assert leftovers(tmp_path) == []


def test_each_case_of_a_spec_is_verified_in_a_ray_task_of_its_own(tmp_path, ray_instance):
    specs = write_specs(tmp_path, a=spec_text("alpha", cases=(8, 16, 24)),
                        b=spec_text("beta", cases=(4,)))
    stages = replace(FAKE, generate=ray_stages.generate_recording,
                     make_inputs=ray_stages.inputs_recording)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"), stages)
    assert rep.ok and [r.status for r in rep.results] == ["built", "built"]
    task = {p.name[len("task-"):]: p.read_text() for p in specs.glob("task-*")}
    alpha = [task["alpha-N8"], task["alpha-N16"], task["alpha-N24"], task["alpha-spec"]]
    assert len(set(alpha)) == 4 and all(alpha)     # three case tasks besides the spec's
    assert task["beta-N4"] == task["beta-spec"]    # a single case stays in the spec's task
    local = build(BuildOptions((str(specs),), str(tmp_path / "local")), FAKE)
    assert local.ok and snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")


def test_tuning_simulations_inside_a_build_run_as_ray_tasks(tmp_path, ray_instance):
    specs = write_specs(tmp_path, a=spec_text("alpha"))        # schedule: auto (the default)
    stages = replace(FAKE, tune=ray_stages.tune_recording)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"), stages)
    assert rep.ok
    spec_task = (specs / "tune-alpha-spec").read_text()
    sims = (specs / "tune-alpha-sims").read_text().split()
    assert len(sims) == 3 and len(set(sims)) == 3 and spec_task not in sims and all(sims)


def test_failing_case_task_is_the_local_builds_located_error(tmp_path, ray_instance):
    specs = write_specs(tmp_path, a=spec_text("alpha", cases=(8, 16, 24)))
    stages = replace(FAKE, evaluate=ray_stages.evaluate_off_at_16)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"), stages)
    local = build(BuildOptions((str(specs),), str(tmp_path / "local")), stages)
    (r,) = rep.results
    assert r.status == "failed" and not rep.written
    assert "tests.cases[1]" in r.diagnostics[0] and "in case N16" in r.diagnostics[0]
    assert r.diagnostics == local.results[0].diagnostics
    assert leftovers(tmp_path) == []


def test_killed_case_task_is_retried(tmp_path, ray_instance):
    specs = write_specs(tmp_path, v=spec_text("victim", 3.0))
    stages = replace(FAKE, make_inputs=ray_stages.inputs_killing_once)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"), stages)
    assert (specs / "case-killed-once").exists()     # the case's first worker really died
    assert rep.ok and [r.status for r in rep.results] == ["built"]
    local = build(BuildOptions((str(specs),), str(tmp_path / "local")), FAKE)
    assert local.ok and snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")


def test_ray_tune_picks_the_same_schedule_and_writes_the_same_cache(tmp_path, ray_instance):
    from nkigen.frontend import load_spec
    from nkigen.tune import tune

    spec = load_spec(ROOT / "specs" / "matmul_bf16.yaml")
    sizes = {"M": 256, "K": 256, "N": 512}
    here = tune(spec, sizes=sizes, cache_dir=tmp_path / "local", jobs=1)
    there = tune(spec, sizes=sizes, cache_dir=tmp_path / "ray", executor="ray")
    assert there.simulated == here.simulated > 1
    assert there.best == here.best and there.candidates == here.candidates
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")


def test_killed_worker_task_is_retried(tmp_path, ray_instance):
    specs = write_specs(tmp_path, a=spec_text("alpha"), v=spec_text("victim", 3.0))
    stages = replace(FAKE, generate=ray_stages.generate_killing_once)
    rows = []                                    # the progress rows, one per spec as it ends
    rep = build(BuildOptions((str(specs),), str(tmp_path / "ray"), executor="ray"), stages,
                on_result=lambda r: rows.append(r.name))
    assert (specs / "killed-once").exists()      # the victim's first worker really died
    assert rep.ok and [r.status for r in rep.results] == ["built", "built"]
    assert sorted(rows) == ["alpha", "victim"]
    local = build(BuildOptions((str(specs),), str(tmp_path / "local")), FAKE)
    assert local.ok and snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")


def test_task_lost_on_every_retry_is_a_located_failure(tmp_path, ray_instance):
    specs = write_specs(tmp_path, a=spec_text("alpha"), v=spec_text("victim", 3.0))
    out = tmp_path / "lib"
    build(BuildOptions((str(specs),), str(out)), FAKE)
    before = snapshot(out)
    stages = replace(FAKE, generate=ray_stages.generate_killing_always)
    with executor.RayExecutor(retries=1) as ex:      # 2 attempts in all
        rep = build(BuildOptions((str(specs),), str(out), executor=ex, rebuild=True), stages)
    assert (specs / "attempts").read_text() == "xx"
    victim = rep.results[1]
    assert victim.status == "failed" and not rep.written
    assert victim.diagnostics[0].startswith(f"{specs / 'v.yaml'}: building this spec failed "
                                            "in its worker: its Ray worker was lost 2 times")
    assert rep.results[0].status == "built"
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_interrupt_cancels_remote_work_and_leaves_out_intact(tmp_path, ray_instance):
    # alpha has one case: verified in its spec's task, it needs no CPU the slow units hold
    specs = write_specs(tmp_path, a=spec_text("alpha", cases=(8,)))
    out = tmp_path / "lib"
    assert build(BuildOptions((str(specs),), str(out)), FAKE).written
    before = snapshot(out)
    for name in ("slow1", "slow2"):
        (specs / f"{name}.yaml").write_text(spec_text(name))
    stages = replace(FAKE, generate=ray_stages.generate_slow)

    def interrupt(r):      # Ctrl-C in the driver, once the slow units run on both CPUs
        deadline = time.monotonic() + 30
        while not all((specs / f"started-{n}").exists() for n in ("slow1", "slow2")):
            assert time.monotonic() < deadline, "the slow units never started"
            time.sleep(0.1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(BuildOptions((str(specs),), str(out), executor="ray", rebuild=True), stages,
              on_result=interrupt)
    assert snapshot(out) == before and leftovers(tmp_path) == []
    # the slow tasks were cancelled: a new task gets a CPU at once (they would hold both 60 s)
    t0 = time.monotonic()
    ray = ray_instance
    assert ray.get(ray.remote(ray_stages.quick).remote(), timeout=20) > 0
    assert time.monotonic() - t0 < 20
    assert not any((specs / f"finished-{n}").exists() for n in ("slow1", "slow2"))


def test_interrupt_cancels_the_case_tasks_of_a_spec(tmp_path, ray_instance):
    import _thread
    import threading

    specs = write_specs(tmp_path, a=spec_text("alpha"))
    out = tmp_path / "lib"
    assert build(BuildOptions((str(specs),), str(out)), FAKE).written
    before = snapshot(out)
    (specs / "slow.yaml").write_text(spec_text("slow"))     # cases N=8 and N=16, 60 s each
    stages = replace(FAKE, make_inputs=ray_stages.inputs_slow)
    started = [specs / "started-slow-N8", specs / "started-slow-N16"]

    def interrupt() -> None:    # Ctrl-C in the driver, once both case tasks run
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        _thread.interrupt_main()

    import signal

    # interrupt_main raises only while Python handles SIGINT (a run started in the background
    # by a non-interactive shell inherits SIG_IGN)
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            build(BuildOptions((str(specs),), str(out), executor="ray", rebuild=True), stages)
    finally:
        signal.signal(signal.SIGINT, saved)
    assert all(p.exists() for p in started), "the slow cases never started"
    assert snapshot(out) == before and leftovers(tmp_path) == []
    # the case tasks were cancelled with their spec's task: a new task gets a CPU at once
    ray = ray_instance
    assert ray.get(ray.remote(ray_stages.quick).remote(), timeout=20) > 0
    assert not list(specs.glob("finished-*"))


def test_ctrl_c_of_the_cli_on_ray_leaves_out_intact(tmp_path, ray_instance):
    """SIGINT to `nkigen build --executor ray` (connected to this module's Ray instance through
    RAY_ADDRESS) while the slowest real specs build: exit 130, no traceback, OUT as it was, and
    the instance's CPUs free again."""
    import signal
    import subprocess

    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(ROOT / "specs" / "row_mean.yaml", specs / "row_mean.yaml")
    out = tmp_path / "lib"
    assert build(BuildOptions((str(specs),), str(out))).written
    before = snapshot(out)
    for name in ("attention_probs.yaml", "causal_scores.yaml"):   # the slowest specs (> 6 s)
        shutil.copy(ROOT / "specs" / name, specs / name)
    deadline = time.monotonic() + 30     # the instance idle first: busy CPUs are the CLI's
    while ray_instance.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "the Ray instance's CPUs are not free"
        time.sleep(0.1)
    env = dict(os.environ, RAY_ADDRESS=ray_instance.get_runtime_context().gcs_address)
    # the CLI as a user's terminal starts it: Python handling SIGINT (a run started in the
    # background by a non-interactive shell would pass SIG_IGN on to it)
    boot = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "sys.argv = ['nkigen'] + sys.argv[1:]; runpy.run_module('nkigen', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", boot, "build", str(specs), "-o", str(out),
                             "--executor", "ray", "--rebuild"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # SIGINT once the CLI is connected and its spec tasks hold the instance's CPUs (each task
    # takes one: executor.RayExecutor); none can finish in the time that takes
    deadline = time.monotonic() + 60
    while ray_instance.available_resources().get("CPU", 0) > 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the CLI's tasks never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nkigen: interrupted" in err and "Traceback" not in err
    assert snapshot(out) == before and leftovers(tmp_path) == []
    ray = ray_instance
    assert ray.get(ray.remote(ray_stages.quick).remote(), timeout=30) > 0


def test_python_api_build_returns_the_library_or_raises_located(tmp_path):
    lib = nkigen.build(ROOT / "specs" / "row_mean.yaml", tmp_path / "lib")   # local executor
    assert list(lib) == ["row_mean"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 3\n")
    with pytest.raises(NkigenError) as e:
        nkigen.build([bad], tmp_path / "lib2")
    assert str(e.value.diagnostics[0]).startswith(f"{bad}:1:")
    assert not (tmp_path / "lib2").exists()
