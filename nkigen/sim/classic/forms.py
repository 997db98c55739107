"""Undocumented classic forms: what the classic (``neuronxcc.nki``) docs do not show, reported as
a warning for user kernels and as an error for the kernels nkigen generates.

Stage: simulate (classic API layer, conformance profile). Seven forms, each found exactly while
the kernel is traced (the simulator knows every loop index's kind, every mask's terms and every
tensor's shape):

``mask.sequential-index``
    A ``mask=`` (or operand-mask) comparison whose side depends on an ``nl.sequential_range``
    index, or on a loop index through a non-affine operation (``//``, ``%``, a product of two
    indices, an index times ``nl.arange``). S25 general/nki/api/nki.api.shared.rst "NKI API
    Masking" (neuronxcc, SDK 2.25): each side of each comparison "must be an affine expression"
    of ``nl.arange()``, ``nl.affine_range()`` or ``nl.program_id()``. (``nl.static_range``
    indices are Python ints: constants, allowed.)
``select.sequential-index``
    The affine expression of ``nisa.affine_select``'s ``pred`` (or ``nisa.iota``'s ``expr``)
    depending on an ``nl.sequential_range`` index or on a loop index through a non-affine
    operation. S25 general/nki/api/nki/isa/__init__.py affine_select (neuronxcc, SDK 2.25):
    ``pred`` is an affine expression that "must not depend on any runtime variables that can't
    be resolved at compile-time"; its examples (S25 general/nki/test/
    test_nki_isa_affine_select.py, examples/sd_attention/sd_attention_nki_kernels.py, whose loops
    are nl.affine_range) build it from nl.arange / nl.mgrid and affine_range indices only, the
    terms the masking section allows.
``mask.matmul-lanes``
    ``mask=`` with ``nl.arange`` lane terms on ``nisa.nc_matmul`` / ``nl.matmul``. Same section:
    a matmul's two free axes cannot be told apart in ``mask=``, so the docs introduce operand
    masking (``nl.matmul(lhsT[i_lhs_f <= 64], rhs[i_rhs_f <= 256], transpose_x=True)``); a mask
    of loop indices only (use case 2, skipping an ineffectual instruction) stays legal.
``index.nonaffine-loop-index``
    A tensor index (an ``nl.arange`` expression, an int or a slice bound) that depends on an
    ``nl.affine_range`` / ``nl.sequential_range`` index through ``%``, ``//`` or a product of
    indices (``w[i_row, i_n % 4 + i_col]``). S25 general/nki/programming_model.rst "Tensor": an
    Index is an affine expression over variables of index-generating APIs; the body of such a
    loop is traced once (S25 general/nki/api/nki/language/__init__.py static_range), so the
    index is symbolic. Public kernels use it on an SBUF block dim (nki-samples
    src/nki_samples/tutorials/attention_fwd_performance/attention_kernels.py
    ``qk_sbuf[:, i_tile_q % 2, ...]``, review 9 R9-2).
``transpose.tensor-integer``
    ``nisa.nc_transpose`` on TensorE of integer data. S25 general/nki/api/nki/isa/__init__.py
    nc_transpose: a TensorE transpose is a matmul with an identity; nc_matmul's data types are
    float8_e4m3/float8_e5m2/bfloat16/float16/tfloat32/float32 and its results float32 (review
    12 R12-1). VectorE transposes move integer data.
``hbm.slice-past-end``
    A basic slice (``a[r0:r0 + 128, :]``, ``nl.ds``) of an HBM tensor whose extent runs past the
    tensor's end, masked or not. S25 general/nki/api/nki.errors.rst
    err_tensor_access_out_of_bound: out-of-bound access is illegal; the documented remedy is an
    ``nl.arange`` index with a ``mask=`` (the masking section's ragged example indexes
    ``in_tensor[i_p, i_f]`` with ``mask=(i_p < sz_p)``), never a slice past the end.
``index.flat-view``
    An HBM tensor index one of whose components carries the partition-axis ``nl.arange``
    together with the ``nl.arange`` of another grid axis: the flattened view
    ``x.reshape((n,))[s_p * nl.arange(P)[:, None] + s_f * nl.arange(F)[None, :]]``. S25
    general/nki/programming_model.rst "Advanced Tensor Indexing" indexes every dimension with
    its own ``start + stride * nl.arange(size)`` and the partition index is a column; S25
    general/nki/api/nki/language/__init__.py load / store: "Partition dimension has to be the
    first dimension in the index tuple of a tile". No classic example mixes the partition index
    with a free one in a dimension (review 8 R8-6, review 9 R9-8, review 13 R13-1 / R13-4). A
    warning in both profiles: generated classic kernels still read ``y[h, w, b] = x[b, h, w]``
    this way (a partition step smaller than the free step: no per-axis view has the partition
    index first; review 13 R13-4, open).

Profiles: ``user`` (the default: public and hand-written kernels; public kernels use some of these
forms, e.g. nki-samples ``contributed/neuron-team-kernels/attention.py`` at 7af4e4d passes a
sequential index into its causal ``forward_mask``) records a located warning on the run
(``Result.warnings``; the run goes on); ``generated`` (what ``nkigen build`` uses to verify
nkigen's own kernels) raises a located :class:`~nkigen.sim.errors.SimError` for every rule in
:data:`GENERATED_ERRORS` and warns for the others. Enter a profile with :func:`profile`.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nkigen.sim import state
from nkigen.sim.errors import SimError, kernel_frame, kernel_loc

S25_MASK = "S25 general/nki/api/nki.api.shared.rst \"NKI API Masking\" (neuronxcc, SDK 2.25)"
S25_OOB = ("S25 general/nki/api/nki.errors.rst err_tensor_access_out_of_bound "
           "(neuronxcc, SDK 2.25)")


@dataclass(frozen=True)
class Form:
    """One undocumented form: its id, the rule in words, the source and the fix."""

    id: str
    rule: str
    source: str
    fix: str


SEQUENTIAL_MASK = Form(
    "mask.sequential-index",
    "each side of a mask comparison must be an affine expression of nl.arange, "
    "nl.affine_range or nl.program_id",
    S25_MASK,
    "run the loop as nl.affine_range, or peel the ragged last iteration (a loop over the full "
    "tiles, then one call on the remainder) instead of masking on the sequential index")
S25_SELECT = ("S25 general/nki/api/nki/isa/__init__.py affine_select / iota (neuronxcc, "
              "SDK 2.25)")
SEQUENTIAL_SELECT = Form(
    "select.sequential-index",
    "the affine expression of affine_select's pred / iota's expr must be resolved at compile "
    "time: an affine expression of nl.arange, nl.affine_range or nl.program_id",
    S25_SELECT,
    "run the loop as nl.affine_range (e.g. allocate the tile it reuses inside the loop body), "
    "or pass the sequential index's value as a trace-time Python int (peel the iteration)")
MATMUL_LANES = Form(
    "mask.matmul-lanes",
    "a matmul mask may not name tile lanes with nl.arange (the two free axes are ambiguous); "
    "mask the operands instead",
    S25_MASK,
    "use operand masking, nl.matmul(lhsT[i_lhs_f < m], rhs[i_rhs_f < n], transpose_x=True) / "
    "nisa.nc_matmul(lhsT[...], rhs[...]), or slice the operands; keep only loop-index "
    "predicates in mask=")
SLICE_PAST_END = Form(
    "hbm.slice-past-end",
    "a slice of an HBM tensor may not run past the tensor's end (out-of-bound access is "
    "illegal, masked or not)",
    S25_OOB,
    "index the ragged tile with nl.arange (i_p = r0 + nl.arange(P)[:, None]) and pass "
    "mask=(i_p < n), or clip the slice to the tensor (peel the last tile)")

S25_INDEX = ("S25 general/nki/programming_model.rst \"Tensor\" (an Index is an affine expression "
             "over variables of index-generating APIs: loop variables, nl.program_id, "
             "nl.affine_range, nl.arange) (neuronxcc, SDK 2.25)")
NONAFFINE_INDEX = Form(
    "index.nonaffine-loop-index",
    "a tensor index must be an affine expression of nl.arange, loop indices and "
    "nl.program_id: no %, // or product of an nl.affine_range / nl.sequential_range index",
    S25_INDEX,
    "run the loop as nl.static_range (its index is then a trace-time Python int), or write the "
    "index affinely (e.g. a loop over the residues)")

S25_TRANSPOSE = ("S25 general/nki/api/nki/isa/__init__.py nc_transpose (a TensorE transpose is a "
                 "matmul with an identity) and nc_matmul (float8_e4m3/float8_e5m2/bfloat16/"
                 "float16/tfloat32/float32 data, float32 results) (neuronxcc, SDK 2.25)")
TENSOR_INTEGER = Form(
    "transpose.tensor-integer",
    "a TensorE nc_transpose is a matmul with the identity, whose data is float8, bfloat16, "
    "float16, tfloat32 or float32: integer data is not shown (the float32 result holds "
    "integers exactly only up to 2**24)",
    S25_TRANSPOSE,
    "transpose integer tiles on VectorE (engine=nisa.vector_engine, 32 x 32 pieces), or copy "
    "them to float32 first if every value is below 2**24")

S25_FLAT = ("S25 general/nki/programming_model.rst \"Advanced Tensor Indexing\" (one "
            "start + stride * nl.arange(size) per dimension, the partition index a column) and "
            "general/nki/api/nki/language/__init__.py load / store (the partition dimension "
            "first in the index tuple) (neuronxcc, SDK 2.25)")
FLAT_VIEW = Form(
    "index.flat-view",
    "an HBM index component may not carry the partition nl.arange together with another "
    "axis's nl.arange (a flattened view, x.reshape((n,))[s_p * i_p + s_f * i_f]): no classic "
    "document shows one",
    S25_FLAT,
    "index the tensor per axis (reshape it so that each nl.arange has its own dimension, the "
    "partition one first), or load rows with the larger stride on the partitions and turn them "
    "on chip")

FORMS: tuple[Form, ...] = (SEQUENTIAL_MASK, SEQUENTIAL_SELECT, MATMUL_LANES, SLICE_PAST_END,
                           NONAFFINE_INDEX, TENSOR_INTEGER, FLAT_VIEW)
FORM_BY_ID = {f.id: f for f in FORMS}

# The rules that fail a generated kernel (``nkigen build`` verification and the generated
# suite). ``NKIGEN_CLASSIC_FORMS=error`` (every rule) or a comma list of ids overrides it
# (tests, census: benchmarks/classic_forms_census.py). ``index.flat-view`` is a warning only:
# generated classic kernels still take it where no per-axis view exists (review 13 R13-4).
WARN_ONLY: frozenset[str] = frozenset({FLAT_VIEW.id})
GENERATED_ERRORS: frozenset[str] = frozenset(FORM_BY_ID) - WARN_ONLY
ENV = "NKIGEN_CLASSIC_FORMS"

USER, GENERATED = "user", "generated"
_PROFILE = [USER]


@contextlib.contextmanager
def profile(name: str) -> Iterator[None]:
    """Run the enclosed simulations under profile ``name`` (``user`` or ``generated``)."""
    if name not in (USER, GENERATED):
        raise ValueError(f"unknown classic forms profile {name!r}")
    _PROFILE.append(name)
    try:
        yield
    finally:
        _PROFILE.pop()


def current() -> str:
    return _PROFILE[-1]


def enforced() -> frozenset[str]:
    """The rule ids that are errors now (the generated profile's switch, or the env override)."""
    if current() != GENERATED:
        return frozenset()
    env = os.environ.get(ENV, "").strip()
    if env == "error":
        return frozenset(FORM_BY_ID)
    if env:
        return frozenset(x.strip() for x in env.split(",")) & frozenset(FORM_BY_ID)
    return GENERATED_ERRORS


_SEEN: list = []      # [(run weakref, {(file, line, form id, call)})]: one per call site
_LOGS: list[list] = []   # open recordings (see :func:`recording`)


@contextlib.contextmanager
def recording() -> Iterator[list]:
    """Collect every report made while open, in every run, as (form id, file, line, call)
    tuples (the census of a corpus whose runs hide their Result, e.g. kernels called directly)."""
    log: list = []
    _LOGS.append(log)
    try:
        yield log
    finally:
        _LOGS.remove(log)


def report(form: Form, what: str, got: Callable[[], str]) -> None:
    """A use of ``form`` (``what``: the call; ``got()``: the actual value, computed only when
    shown): an error in the generated profile when the rule is switched on, else one located
    warning per kernel call site (the site is found by a cheap frame walk; the column and the
    value are worked out once per site)."""
    if form.id in enforced():
        raise SimError(f"{what}: {form.rule} [{form.id}; {form.source}]", got(), form.fix)
    f = kernel_frame(2)
    site = (f.f_code.co_filename, f.f_lineno, form.id, what) if f is not None else \
        ("", 0, form.id, what)
    for log in _LOGS:
        log.append((form.id, site[0], site[1], what))
    run = state.current()
    if not _SEEN or _SEEN[0][0]() is not run:
        _SEEN[:] = [(weakref.ref(run), set())]
    if site in _SEEN[0][1]:
        return
    _SEEN[0][1].add(site)
    loc = kernel_loc()
    where = f"{loc}: " if loc is not None else ""
    run.warnings.append(f"{where}warning: {what}: {form.rule} [{form.id}; {form.source}] "
                        f"(got {got()}); {form.fix}")
