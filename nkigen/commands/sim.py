"""``nkigen sim FILE.py::KERNEL --input NAME=SHAPE:DTYPE ...``: run one NKI kernel in the simulator.

Stage: simulate (CLI). Random inputs of the given shapes, prints each output's shape, dtype and
summary statistics and the cost report; ``--cost-only`` skips the arithmetic; ``--trace`` writes a
Perfetto/Chrome trace JSON; ``--explain-cost`` names the bound (engine or DMA queue, utilisation)
and the kernel lines that dominate it (nkigen.sim.calibration). Errors print a located message
and exit 1.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
from typing import TYPE_CHECKING

from nkigen.cli import require_paths
from nkigen.diagnostics import Loc

if TYPE_CHECKING:   # numpy and the simulator are imported when the command runs (start-up)
    import numpy as np

    from nkigen.sim.errors import SimError

# inputs a numeric run may allocate (all of them together); larger ones need --cost-only
INPUT_BUDGET_BYTES = 2 ** 32
MAX_DIM = 2 ** 31 - 1

HELP = "simulate an NKI kernel file on random inputs and print outputs and the cost estimate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kernel", metavar="FILE.py::KERNEL", help="kernel file and function name")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=SHAPE[:DTYPE]",
                   help="an input, e.g. a=128x512:bfloat16 (dtype defaults to float32)")
    p.add_argument("--target", choices=["trn1", "trn2"], default=None,
                   help="NeuronCore target (default: kernel's platform_target, else trn2)")
    p.add_argument("--cost-only", action="store_true",
                   help="no arithmetic: checks, trace and cost estimate only")
    p.add_argument("--trace", metavar="OUT.json", help="write a Perfetto trace of the estimate")
    p.add_argument("--seed", type=_seed, default=0,
                   help="random seed for the inputs (a non-negative integer)")
    p.add_argument("--explain-cost", action="store_true",
                   help="name what bounds the estimate (engine or DMA queue, utilisation) and "
                   "the kernel lines whose instructions occupy it most")


def _seed(text: str) -> int:
    """``--seed``: a non-negative integer (NumPy's generators take no negative seed)."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return int(text)


def _parse_input(spec: str) -> tuple[str, tuple[int, ...], np.dtype]:
    from nkigen.sim import dt
    from nkigen.sim.errors import SimError

    name, sep, rest = spec.partition("=")
    shape_s, _, dtype_s = rest.partition(":")
    try:
        if not sep or not name:
            raise ValueError
        dims = shape_s.lower().split("x")
        if not all(x.isascii() and x.isdigit() for x in dims) or (sep and rest.endswith(":")):
            raise ValueError
        shape = tuple(int(x) for x in dims)
        if any(s <= 0 for s in shape):
            raise ValueError
    except ValueError:
        raise SimError("bad --input", spec, "use NAME=SHAPE[:DTYPE], e.g. a=128x512:bfloat16",
                       loc=Loc("<command line>"), field="--input") from None
    if any(s > MAX_DIM for s in shape):
        raise SimError(f"bad --input: a dimension is larger than {MAX_DIM}", spec,
                       "use smaller dimensions", loc=Loc("<command line>"), field="--input")
    try:
        d = dt.as_dtype(dtype_s or "float32")
    except SimError as e:
        raise SimError(f"bad --input: {e.rule}", f"{dtype_s!r} in {spec}", e.diagnostics[0].fix,
                       loc=Loc("<command line>"), field="--input") from None
    return name, shape, d


def _check_budget(inputs: dict[str, tuple]) -> None:
    """A numeric run allocates every input: refuse more than INPUT_BUDGET_BYTES in total."""
    from nkigen.sim import dt
    from nkigen.sim.errors import SimError

    total = 0
    for name, (shape, d) in inputs.items():
        nbytes = math.prod(shape) * d.itemsize
        total += nbytes
        if total > INPUT_BUDGET_BYTES:
            shown = f"{name}={'x'.join(map(str, shape))}:{dt.name(d)}, {nbytes} bytes"
            raise SimError(f"inputs too large to simulate numerically (more than "
                           f"{INPUT_BUDGET_BYTES // 2 ** 30} GiB in total)", shown,
                           "use smaller shapes, or --cost-only (no arithmetic)",
                           loc=Loc("<command line>"), field="--input")


def _random(rng: np.random.Generator, shape, d: np.dtype) -> np.ndarray:
    import numpy as np

    from nkigen.sim import dt
    if dt.is_int(d):
        return rng.integers(0, 16, size=shape).astype(d)
    return rng.standard_normal(shape, dtype=np.float32).astype(d)


def _stats(a: np.ndarray) -> str:
    import numpy as np
    f = a.astype(np.float64)
    nan = int(np.isnan(f).sum())
    ok = f[~np.isnan(f)]
    if ok.size == 0:
        return f"all NaN ({nan} elements)"
    s = (f"min {ok.min():.6g}  max {ok.max():.6g}  mean {ok.mean():.6g}  std {ok.std():.6g}")
    return s + (f"  NaN {nan}" if nan else "")


def _user_error(e: BaseException, path: str, field: str) -> SimError:
    """A Python exception raised by the user's kernel file, located at its innermost line there.
    SystemExit (sys.exit, exit()) is an error of the kernel too, not nkigen's exit code."""
    from nkigen.sim.errors import SimError, traceback_loc

    loc = traceback_loc(e.__traceback__, path) or Loc(path)
    if isinstance(e, SystemExit):
        return SimError("kernel code raised SystemExit (sys.exit or exit())",
                        f"exit code {e.code!r}", "kernels must not exit; raise an exception or "
                        "return", loc=loc, field=field)
    return SimError(f"{type(e).__name__}: {e}", loc=loc, field=field)


def run_command(args: argparse.Namespace) -> int:
    import numpy as np

    from nkigen.sim import dt, runner
    from nkigen.sim.errors import SimError
    from nkigen.sim.runner import Placeholder, placeholder
    path, sep, name = args.kernel.rpartition("::")
    if not sep or not path or not name:
        raise SimError("kernel must be given as FILE.py::KERNEL", args.kernel,
                       loc=Loc("<command line>"), field="kernel")
    if "::" not in path:    # else a malformed FILE.py::KERNEL, reported by the loader
        require_paths([path])
    if args.trace and os.path.isdir(args.trace):   # before a possibly long simulation
        raise SimError("cannot write the trace", "is a folder",
                       "pass a file path, e.g. trace.json", loc=Loc(args.trace), field="--trace")
    try:
        kernel = runner.load(path, name)
    except SimError:
        raise
    except (Exception, SystemExit) as e:  # the kernel file failed while being imported
        raise _user_error(e, path, "load") from None
    if not (isinstance(kernel, runner.Kernel) or inspect.isfunction(kernel)):
        raise SimError(f"{name!r} is not a kernel function", type(kernel).__name__,
                       "name a function of the file (decorated with @nki.jit)",
                       loc=Loc(path), field="kernel")
    fn = getattr(kernel, "fn", kernel)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    inputs: dict[str, tuple] = {}
    for spec in args.input:
        nm, shape, d = _parse_input(spec)
        if nm in inputs:
            raise SimError("--input names a parameter twice", spec,
                           f"give one --input per parameter (drop one of the {nm}=...)",
                           loc=Loc("<command line>"), field="--input")
        inputs[nm] = (shape, d)
    if not args.cost_only:
        _check_budget(inputs)
    rng = np.random.default_rng(args.seed)
    values: list = []
    for prm in params:
        if prm.name in inputs:
            shape, d = inputs.pop(prm.name)
            values.append(placeholder(shape, d) if args.cost_only else _random(rng, shape, d))
        elif prm.default is inspect.Parameter.empty and prm.kind in (
                prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD):
            raise SimError(f"missing --input for kernel parameter {prm.name!r}",
                           fix="kernel parameters: " + ", ".join(p.name for p in params),
                           loc=Loc(path), field="--input")
        else:
            break
    if inputs:
        raise SimError("--input names no kernel parameter", ", ".join(inputs),
                       "kernel parameters: " + ", ".join(p.name for p in params),
                       loc=Loc(path), field="--input")
    try:
        res = runner.run(kernel, values, target=args.target, numerics=not args.cost_only)
    except SimError:
        raise
    except (Exception, SystemExit) as e:  # a Python error inside the kernel: at its line
        raise _user_error(e, path, "kernel") from None
    print(f"{path}::{name} on {res.target} ({len(res.instrs)} instructions; peak SBUF "
          f"{res.peak_sbuf_bytes} B/partition, PSUM {res.peak_psum_bytes} B/partition)")
    for w in res.warnings:
        print(w, file=sys.stderr)
    for i, o in enumerate(res.outputs):
        if isinstance(o, Placeholder):
            print(f"  output {i}: shape {list(o.shape)} {dt.name(o.dtype)} (cost-only)")
        else:
            print(f"  output {i}: shape {list(o.shape)} {dt.name(o.dtype)}  {_stats(o)}")
    if res.report is None:
        print("cost model: not available")
    else:
        print(res.report)
        if getattr(args, "explain_cost", False):
            from nkigen.sim.calibration import explain_bound
            print(explain_bound(res.report))
        if args.trace:
            from nkigen.sim import perfetto
            try:
                out = perfetto.write_trace(res.report, args.trace)  # type: ignore[arg-type]
            except OSError as e:
                raise SimError("cannot write the trace", e.strerror or str(e),
                               "pass a writable file path, e.g. trace.json",
                               loc=Loc(args.trace), field="--trace") from None
            print(f"trace written to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from nkigen.sim.errors import SimError

    try:
        return run_command(args)
    except SimError:
        raise
    except (OSError, RecursionError) as e:
        print(f"nkigen sim: {e}", file=sys.stderr)
        return 1
