"""``neuronxcc.nki`` (classic API): ``jit``, ``simulate_kernel``, the device-only decorators,
and the ``language`` / ``isa`` / ``typing`` submodules.

Stage: simulate (classic API layer). Input: a kernel function and NumPy arrays (or
``nt.tensor`` placeholders). Output: the kernel's returned tensors as NumPy arrays; with the
older output-argument convention (outputs passed as parameters, nothing returned) the
parameters the kernel wrote, which are also copied back into the caller's arrays.

``jit(mode=...)``: "auto" and "simulation" run in the simulator; "baremetal", "benchmark",
"torchxla" and "jax" need a device or framework and raise an error saying so. ``benchmark`` and
``profile`` need a Neuron device and raise; ``baremetal`` without artifact options runs in the
simulator (its outputs are the kernel's outputs; no NEFF or trace is produced).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from nkigen.sim import state
from nkigen.sim.classic import compiler, isa, language, typing
from nkigen.sim.classic.tile import wrap
from nkigen.sim.errors import SimError, UnsupportedError
from nkigen.sim.runner import Kernel, Placeholder, run
from nkigen.sim.tensor import Tensor

__all__ = ["ClassicKernel", "baremetal", "benchmark", "compiler", "isa", "jit", "language",
           "profile", "simulate_kernel", "tensor", "trace", "typing"]

tensor = Tensor
_DEVICE_MODES = {"baremetal": "a Neuron device", "benchmark": "a Neuron device (neuron-bench)",
                 "torchxla": "PyTorch/XLA and a Neuron device", "jax": "JAX and a Neuron device"}
_SIM_MODES = {"auto", "simulation"}


class ClassicKernel(Kernel):
    """A classic ``@nki.jit`` kernel over the core :class:`~nkigen.sim.runner.Kernel`: its
    tensor arguments become classic tiles, and the output-argument convention is supported."""

    classic_api = True

    def __init__(self, fn: Callable, grid: tuple[int, ...] = (), options: dict | None = None):
        if isinstance(fn, ClassicKernel):
            options = {**fn.options, **(options or {})}
            grid = grid or fn.grid
            fn = fn.user
        elif isinstance(fn, Kernel):
            options = {**fn.options, **(options or {})}
            grid = grid or fn.grid
            fn = fn.fn
        self.user: Callable = fn
        self.inputs: list[Tensor] = []

        @functools.wraps(fn)                 # inspect.signature sees the kernel's parameters
        def entry(*args, **kwargs):
            return self._entry(*args, **kwargs)
        super().__init__(entry, grid, options)
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def _entry(self, *args, **kwargs):
        targs = [wrap(a) for a in args]
        if state.current().program in ((), (0,) * len(self.grid)):
            self.inputs = [a for a in targs if isinstance(a, Tensor)]
        return self.user(*targs, **kwargs)

    def __getitem__(self, grid) -> ClassicKernel:
        g = Kernel.__getitem__(self, grid).grid
        return ClassicKernel(self.user, g, self.options)

    def __call__(self, *args, **kwargs):
        if state.active() is not None:
            if self.grid:
                raise SimError("calling a gridded kernel from another kernel is not allowed",
                               self.__name__)
            return self._entry(*args, **kwargs)
        mode = self.options.get("mode", "auto")
        if mode not in _SIM_MODES:
            need = _DEVICE_MODES.get(mode)
            if need is None:
                raise SimError("unknown nki.jit mode", repr(mode),
                               "use 'auto', 'simulation', 'baremetal', 'benchmark', "
                               "'torchxla' or 'jax'")
            raise UnsupportedError(f"nki.jit(mode={mode!r}) (needs {need})",
                                   "use mode='simulation' or nki.simulate_kernel(kernel, ...)")
        return simulate(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<neuronxcc.nki kernel {self.__name__}{list(self.grid) if self.grid else ''}>"


def jit(func: Callable | None = None, mode: str = "auto", **kwargs):
    """``nki.jit`` / ``nki.jit(mode="simulation", platform_target="trn2")``."""
    options = {"mode": mode, **kwargs}
    if func is None:
        return lambda f: ClassicKernel(f, options=options)
    return ClassicKernel(func, options=options)


def trace(func: Callable | None = None, **kwargs):
    """``nki.trace``: marks a sub-kernel called from a top-level kernel (S25 nki.errors
    err_nested_kernel_with_spmd_grid, test_sbuf_modulo_alloc.py); it is traced inline, and
    called from Python it runs in the simulator like ``nki.jit``."""
    return jit(func, mode="simulation") if func is not None else (
        lambda f: jit(f, mode="simulation"))


def simulate(kernel: ClassicKernel, args, kwargs=None, target: str | None = None):
    """Run in the simulator; returned outputs, else the written output parameters."""
    res = run(kernel, args, target=target, kwargs=kwargs, report=False)
    out = res.outputs
    if not out:
        written = {r.tensor for ins in res.instrs for r in ins.writes}
        params = [(i, t) for i, t in enumerate(kernel.inputs) if t.alloc.id in written]
        if not params:
            raise SimError("err_tensor_output_not_written_to: the kernel returns nothing and "
                           "writes none of its parameters", kernel.__name__,
                           "return the output tensors (or write the output parameter; check "
                           "that the loop storing it runs at least once)")
        vals: list = []
        for i, t in params:
            if t.alloc.data is None:
                vals.append(Placeholder(t.shape, t.dtype))
                continue
            v = np.array(t.np(), copy=True)
            caller = _array_args(args)[i] if i < len(_array_args(args)) else None
            if isinstance(caller, np.ndarray) and caller.flags.writeable \
                    and caller.shape == v.shape:
                np.copyto(caller, v.astype(caller.dtype, copy=False))
            vals.append(v)
        out = tuple(vals)
    if not out:
        return None
    return out[0] if len(out) == 1 else out


def _array_args(args) -> list:
    return [a for a in args if isinstance(a, (np.ndarray, Placeholder))]


def simulate_kernel(kernel: Callable, *args, **kwargs):
    """``nki.simulate_kernel(kernel, *numpy_arrays)``: the kernel's outputs as NumPy arrays."""
    k = kernel if isinstance(kernel, ClassicKernel) else ClassicKernel(kernel)
    return simulate(k, args, kwargs)


class _DeviceOnly:
    """A kernel decorated with a device-only API: calling it raises an error saying so."""

    def __init__(self, api: str, fn: Callable, fix: str):
        self.api, self.fn, self.fix = api, fn, fix
        self.__name__ = getattr(fn, "__name__", "kernel")

    def __call__(self, *args, **kwargs):
        raise UnsupportedError(f"{self.api} (needs a Neuron device; this machine has none)",
                               self.fix)

    @property
    def benchmark_result(self):
        raise UnsupportedError(f"{self.api}: benchmark_result (no device measurement)",
                               self.fix)


def _decorator(api: str, fix: str, func, kwargs, sim_ok: Callable[[dict], bool] | None = None):
    def deco(f):
        if sim_ok is not None and sim_ok(kwargs):
            return ClassicKernel(f, options={"mode": "simulation"})
        return _DeviceOnly(api, f, fix)
    return deco if func is None else deco(func)


def benchmark(func=None, **kwargs):
    """``@nki.benchmark(warmup=, iters=, ...)``: device only."""
    return _decorator("nki.benchmark", "for a modelled (not measured) latency use "
                      "nkigen.sim.run(kernel, args).report", func, kwargs)


def profile(func=None, **kwargs):
    """``@nki.profile(working_directory=, ...)``: device only."""
    return _decorator("nki.profile", "for a modelled timeline use nkigen.sim.run(...) and "
                      "nkigen.sim.perfetto", func, kwargs)


_ARTIFACTS = ("save_neff_name", "save_trace_name", "artifacts_dir")


def baremetal(func=None, **kwargs):
    """``@nki.baremetal``: runs in the simulator unless device artifacts are requested."""
    return _decorator("nki.baremetal with save_neff_name/save_trace_name/artifacts_dir",
                      "drop the artifact options to run it in the simulator", func, kwargs,
                      sim_ok=lambda kw: not any(kw.get(k) for k in _ARTIFACTS))


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"neuronxcc.nki.{name}")
