"""Fake pipeline stages for the library-build tests (no test functions here).

The build machinery (cache, atomic swap, parallel units, manifest, suite rendering) is tested on
its own with these: a tiny YAML format loaded into the real Spec IR, a generator that emits a
numpy "kernel" (y = x * factor, rejecting sizes that are not a multiple of 4), a simulator
stand-in that imports it and models latency as N / 10 us, and a float64 reference.
Module-level functions only, so a Stages of them pickles into worker processes.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.dtypes import DType
from nkigen.ir import Param, Role, Schedule, SizeDecl, Spec, TensorDecl, Tests, size_symbol
from nkigen.library.stages import Stages

CALLS_FILE_ENV = "NKIGEN_TEST_CALLS"


def spec_text(name: str, factor: float = 2.0, cases=(8, 16), bug: float = 0,
              lax: int = 0) -> str:
    """``bug`` is added to every output; ``lax`` 1: the kernel accepts sizes it must reject."""
    cs = ", ".join(f"{{N: {n}}}" for n in cases)
    return (f"name: {name}\ndoc: scale x by {factor}\nsizes: {{N: {{multiple_of: 4, max: 64}}}}\n"
            f"params: {{factor: {factor}, bug: {bug!r}, lax: {lax}}}\n"
            f"inputs: {{x: {{shape: [N], dtype: float32}}}}\n"
            f"outputs: {{y: {{shape: [N], dtype: float32}}}}\n"
            f"tests: {{cases: [{cs}]}}\n")


def fake_load(path) -> Spec:
    data = Path(path).read_bytes()
    try:
        doc = yaml.safe_load(data)
        name = doc["name"]
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise NkigenError(Diagnostic(Loc(str(path), 1, 1), "name", "not a fake spec",
                                     got=type(e).__name__, fix="fix the spec")) from None
    n = size_symbol("N")
    return Spec(
        name=name, doc=doc.get("doc", ""), target=None,
        sizes=(SizeDecl("N", multiple_of=4, max=64),),
        params=tuple(Param(k, v) for k, v in doc.get("params", {}).items()),
        inputs=(TensorDecl("x", Role.INPUT, (n,), DType.float32),),
        outputs=(TensorDecl("y", Role.OUTPUT, (n,), DType.float32),),
        temps=(), statements=(), ranges=(), schedule=Schedule(),
        tests=Tests(cases=tuple((("N", c["N"]),) for c in doc["tests"]["cases"])),
        path=str(path), sha256=hashlib.sha256(data).hexdigest(), loc=Loc(str(path), 1, 1),
    )


def _record(what: str) -> None:
    import os

    calls = os.environ.get(CALLS_FILE_ENV)
    if calls:
        with open(calls, "a") as f:
            f.write(what + "\n")


def fake_generate(spec, target, dialect, schedule) -> tuple[str, dict]:
    _record(f"generate {spec.name}")
    p = spec.param_values()
    return fake_source(spec, target, dialect, p), {"tiles": {"n": 4}, "chosen_by": "default"}


def fake_source(spec, target, dialect, p) -> str:
    return (f'"""Fake kernel {spec.name} ({target}, {dialect})."""\n'
            "import numpy as np\n\n\n"
            f"def {spec.name}(x):\n"
            "    n = x.shape[0]\n"
            + ("    if False:\n" if p.get("lax") else "    if n % 4:\n") +
            "        raise ValueError(f'size N = {n} must be a multiple of 4')\n"
            f"    return (x.astype(np.float64) * {p['factor']} + {p['bug']}).astype(np.float32)\n")


def fake_cases(spec) -> list[dict]:
    return [dict(c) for c in spec.tests.cases]


def fake_invalid(spec) -> list[tuple[dict, str]]:
    return [({"N": 6}, "size N = 6 must be a multiple of 4")]


def fake_inputs(spec, sizes, seed=None) -> dict:
    rng = np.random.default_rng(0 if seed is None else seed)
    return {"x": rng.standard_normal(sizes["N"]).astype(np.float32)}


def fake_evaluate(spec, inputs, sizes) -> dict:
    return {"y": np.asarray(inputs["x"], np.float64) * spec.param_values()["factor"]}


def fake_tolerance(spec, sizes) -> tuple[float, float]:
    return (1e-6, 1e-6)


def fake_sim_load(path, name):
    s = importlib.util.spec_from_file_location(f"fake_kernel_{name}", path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return getattr(m, name)


def fake_sim_run(kernel, args, target, numerics=True):
    y = kernel(*args)
    n = args[0].shape[0]
    return SimpleNamespace(outputs=y, report=SimpleNamespace(latency_us=n / 10, hfu=0.0,
                                                             mbu=0.5))


def fake_api_version(dialect: str) -> str:
    return "fake-1"


FAKE = Stages(load_spec=fake_load, generate=fake_generate, tune=None,
              cases=fake_cases, invalid_cases=fake_invalid, make_inputs=fake_inputs,
              evaluate=fake_evaluate, tolerance=fake_tolerance, sim_load=fake_sim_load,
              sim_run=fake_sim_run, api_version=fake_api_version)


def fake_tune(spec, target, dialect, sizes, cache_dir=None):
    _record(f"tune {spec.name} N={sizes['N']}")
    return None


def fake_generate_crash(spec, target, dialect, schedule):
    """Kill the worker process outright when building kernel 'crash'."""
    if spec.name == "crash":
        import os

        os._exit(3)
    return fake_generate(spec, target, dialect, schedule)
