"""The lint rules and the removed/deprecated names, written by hand from the NKI docs.

Stage: lint (data). Every row names its source document and the API version it applies to.
The signature, name, operator and activation rows are extracted (``api_nki``, ``api_classic``);
this module holds what the API reference states in prose. Citation keys as in
:mod:`nkigen.lint.table` (S29 = aws-neuron-sdk tag v2.29.0 ``nki/``, nki 0.3; SH = HEAD
``nki/``, nki 0.6, for later deprecations; S25 = tag v2.25.0 ``general/nki/``).
"""

from __future__ import annotations

from nkigen.lint.table import Api, Level, Name, NameStatus, Rule

N, C = Api.NKI, Api.CLASSIC
BOTH = (N, C)
E, D, A = Level.ERROR, Level.DEPRECATED, Level.DISCOURAGED

S29_MIG = "S29 nki/deep-dives/nki-0-3-0-update-guide.rst"
S29_BETA2 = "S29 nki/deep-dives/nki-beta2-migration-guide.rst"
S29_ISA = "S29 nki/api/nki/isa/__init__.py"
S29_NL = "S29 nki/api/nki/language/__init__.py"
S29_GUIDE = "S29 nki/get-started/nki-language-guide.rst"
HEAD_MIG = "SH nki/migration/index.rst"
S25_ISA = "S25 general/nki/api/nki/isa/__init__.py"
S25_NL = "S25 general/nki/api/nki/language/__init__.py"
V3 = "nki 0.3"
V25 = "neuronxcc.nki (SDK 2.25)"

RULES: tuple[Rule, ...] = (
    # --- names and imports -------------------------------------------------------------------
    Rule("api.unknown-name", BOTH, E,
         "the name is not in the documented API of this NKI version",
         "use a documented name (see the API reference of the targeted version)",
         "S29 nki/api/ (nki 0.3); S25 general/nki/api/ (SDK 2.25): the API stubs and pages",
         f"{V3}; {V25}"),
    Rule("api.removed", BOTH, E,
         "the name was removed from this NKI version",
         "use the replacement the migration guide names",
         S29_BETA2, "nki 0.2 and later"),
    Rule("api.deprecated", BOTH, D,
         "the name is deprecated in this NKI version",
         "use the current name",
         f"{S29_NL} (affine_range, sequential_range); {S29_ISA} (activation_reduce); {S29_MIG} "
         "(tensor_copy_dynamic_*); later versions (--nki-version): SH nki/api/nki/isa "
         "(*_engine constants, nki 0.5), SH nki/api/nki/language (static_range, nki 0.6)",
         "the targeted nki version (0.3 by default)"),
    Rule("api.static-range", (C,), A,
         "classic static_range fully unrolls the loop; the docs call it a fall-back for "
         "debugging only",
         "use nl.affine_range (independent iterations) or nl.sequential_range (loop-carried "
         "dependency), with mask= for ragged tiles",
         f"{S25_NL}::static_range", V25),
    Rule("api.classic-import", (N,), D,
         "a current-API (nki) kernel uses the classic neuronxcc.nki namespace (a warning up to "
         "nki 0.3, a compilation error from nki 0.4)",
         "import nki, nki.isa and nki.language instead", f"{S29_BETA2}; {HEAD_MIG}",
         "nki 0.3 (error from 0.4)"),
    # --- signatures ----------------------------------------------------------------------------
    Rule("sig.positional", BOTH, E, "too many positional arguments",
         "pass the extra arguments by keyword",
         "the API stubs (S29 nki/api/, S25 general/nki/api/)",
         f"{V3}; {V25}"),
    Rule("sig.keyword-only", BOTH, E, "the parameter is keyword-only",
         "pass it as name=value", "the API stubs (S25 general/nki/api/ '*' parameters)", V25),
    Rule("sig.unknown-keyword", BOTH, E, "the function has no parameter of this name",
         "use a documented parameter name", "the API stubs (S29 nki/api/, S25 general/nki/api/)",
         f"{V3}; {V25}"),
    Rule("sig.missing", BOTH, E, "a required argument is missing",
         "pass it (the API reference lists the required parameters)",
         "the API stubs (S29 nki/api/, S25 general/nki/api/)", f"{V3}; {V25}"),
    Rule("sig.duplicate", BOTH, E, "the argument is given both by position and by keyword",
         "pass it once", "the API stubs (Python call semantics)", f"{V3}; {V25}"),
    Rule("sig.mask", (N,), E, "mask= was removed in nki 0.2",
         "clip the tile with Python min()/slices instead of a mask", S29_BETA2,
         "nki 0.2 and later"),
    Rule("sig.isa-result", (N,), E,
         "nki.isa instructions write their explicit dst and return nothing (nki 0.2+)",
         "pass the destination tile as dst= instead of using the return value", S29_BETA2,
         "nki 0.2 and later"),
    Rule("sig.jit-platform-target", (N,), E,
         "nki.jit(platform_target=...) raises an error in nki 0.3",
         "drop it; set NEURON_PLATFORM_TARGET_OVERRIDE for the target", S29_MIG, V3),
    Rule("sig.jit-mode", (N,), D, "nki.jit(mode=...) is deprecated and ignored in nki 0.3",
         "drop it (the framework is detected from the arguments)", S29_MIG, V3),
    # --- operators and engines -----------------------------------------------------------------
    Rule("op.alu", BOTH, E, "the operator is not in the ALU operator table",
         "use a listed operator (division: nisa.reciprocal or activation(op=nl.reciprocal), "
         "then multiply)",
         "S29 nki/api/nki.api.shared.rst (tbl-aluop); S25 general/nki/api/nki.api.shared.rst "
         "(tbl-aluop)", f"{V3}; {V25}"),
    Rule("op.reduce", BOTH, E, "the operator is not a legal reduction operator",
         "use an operator whose 'Legal Reduction op' column is Y (add, maximum, ...)",
         "S29 nki/api/ and S25 general/nki/api/ nki.api.shared.rst (tbl-aluop, Legal "
         "Reduction op column)", f"{V3}; {V25}"),
    Rule("op.activation", BOTH, E,
         "the function is not in the activation function table",
         "use a listed activation function, or an ALU instruction for arithmetic",
         "S29 nki/api/nki.api.shared.rst (tbl-act-func); S25 general/nki/api/nki.api.shared.rst "
         "(tbl-act-func)", f"{V3}; {V25}"),
    Rule("op.activation-reduce", (N,), E, "the activation reduce_op must be nl.add",
         "use reduce_op=nl.add, or a separate nisa.tensor_reduce",
         f"{S29_ISA}::activation", V3),
    Rule("engine.gpsimd-rsqrt", BOTH, E,
         "tensor_scalar may run on GpSimd only for rsqrt",
         "leave engine unset (the compiler picks) or use the Vector engine",
         f"{S29_ISA}::tensor_scalar; {S25_ISA}::tensor_scalar", f"{V3}; {V25}"),
    Rule("engine.scalar-ops", BOTH, E,
         "tensor_scalar on the Scalar engine supports only op0=multiply with op1=add or None, "
         "or op0=add with op1=None (trn2)",
         "leave engine unset or use the Vector engine",
         f"{S29_ISA}::tensor_scalar; {S25_ISA}::tensor_scalar", f"{V3}; {V25}"),
    Rule("engine.bitvec-vector", BOTH, E,
         "tensor_scalar with bitvec operators must run on the Vector engine",
         "use engine=vector or leave it unset",
         f"{S29_ISA}::tensor_scalar; {S25_ISA}::tensor_scalar", f"{V3}; {V25}"),
    Rule("engine.alu-engine", (C,), E,
         "the operator is not supported on the chosen engine (Supported Engine column)",
         "choose an engine the table lists, or leave engine unset",
         "S25 general/nki/api/nki.api.shared.rst (tbl-aluop)", V25),
    # --- data types ----------------------------------------------------------------------------
    Rule("dtype.nc-transpose", (N,), E,
         "nc_transpose: dst must have the same dtype as data",
         "allocate dst with data's dtype, then cast with tensor_copy if needed",
         f"{S29_ISA}::nc_transpose", V3),
    Rule("dtype.dma-transpose-size", BOTH, E,
         "DMA transpose supports 2-byte and 4-byte dtypes only",
         "transpose on TensorE (nc_transpose / matmul with is_transpose) or widen the dtype first",
         "S29 nki/guides/architecture/trainium2_arch.rst (DMA transpose); "
         f"{S29_ISA}::dma_transpose", "trn2 hardware; nki 0.3"),
    Rule("dtype.dma-transpose-match", (N,), E,
         "dma_transpose: src and dst must have the same dtype",
         "allocate dst with src's dtype", f"{S29_ISA}::dma_transpose", V3),
    Rule("dtype.fp32-scalar", (N,), E,
         "the scalar must be a float32 constant (tensor_scalar operands with arithmetic "
         "operators; activation scale)",
         "write a float literal (1.0, -1.0)",
         f"{S29_ISA}::tensor_scalar; {S29_ISA}::activation", V3),
    Rule("dtype.memset-value", (N,), E,
         "memset value must match the destination dtype (an integer tile takes an integer value)",
         "write an integer literal for integer tiles", S29_MIG, V3),
    # --- memory --------------------------------------------------------------------------------
    Rule("mem.buffer", BOTH, E, "buffer= must be one of the documented memory regions",
         "use nl.sbuf, nl.psum, nl.hbm, nl.private_hbm or nl.shared_hbm (no strings since "
         "nki 0.3)", f"{S29_MIG}; {S29_NL}; {S25_NL}", f"{V3}; {V25}"),
    Rule("mem.output-shared-hbm", (N,), E,
         "a kernel output (returned by a top-level kernel) must be allocated with "
         "buffer=nl.shared_hbm", "allocate it with buffer=nl.shared_hbm", S29_MIG, V3),
    Rule("mem.shared-hbm-scope", (C,), E,
         "shared_hbm tensors can not be created inside a loop",
         "hoist the allocation out of the loop",
         "S25 general/nki/api/nki.errors.rst (err_shared_hbm_must_in_kernel_level)", V25),
    Rule("mem.dma-from-psum", (N,), E, "dma_copy can not read from PSUM (nki 0.3)",
         "copy the PSUM tile to SBUF with nisa.tensor_copy first", S29_MIG, V3),
    Rule("index.zero-stride", (C,), A,
         "a zero-stride nl.arange index (a partition broadcast read straight from memory) is not "
         "an access pattern the classic docs describe",
         "load the row once, then broadcast it with nl.broadcast_to",
         "S25 general/nki/programming_model.rst (Tensor Indexing: affine nl.arange "
         f"expressions); {S25_NL}::broadcast_to", V25),
    Rule("mem.matmul", BOTH, E,
         "nc_matmul reads stationary and moving from SBUF and writes dst to PSUM; a TensorE "
         "nc_transpose reads SBUF and writes PSUM",
         "allocate the operands with buffer=nl.sbuf and the result with buffer=nl.psum",
         f"{S29_ISA}::nc_matmul, ::nc_transpose; {S25_ISA}::nc_matmul", f"{V3}; {V25}"),
    Rule("shape.partition-max", BOTH, E,
         "an SBUF/PSUM tensor's partition (first) dimension can not exceed 128",
         "tile the partition dimension by nl.tile_size.pmax (128)",
         "S29 nki/get-started/about/tiling-overview.rst; S25 general/nki/programming_model.rst "
         "(TC#1)", f"{V3}; {V25}"),
    Rule("scope.tensor-out-of-scope", (C,), E,
         "a tensor created inside an if/else/for/while block is used after the block "
         "(classic tensors are scoped to their block)",
         "allocate it before the block (nl.ndarray) and assign into it with t[...] = ...",
         "S25 general/nki/api/nki.errors.rst (err_local_variable_used_out_of_scope)", V25),
    # --- kernel structure ----------------------------------------------------------------------
    Rule("struct.statement", (N,), E,
         "the statement is not part of the NKI language subset the compiler accepts",
         "shape checks: assert; lifetimes: scope (no del); no try/raise/global/yield/lambda",
         f"{S29_GUIDE} (Control Flow, Class Support); S29 nki/deep-dives/nki-compiler.rst", V3),
    Rule("struct.statement-classic", (C,), A,
         "del/try inside a classic kernel: no documented classic kernel uses them; the docs "
         "rely on scope for tile lifetimes",
         "drop del (a tile lives until the end of its scope); no try",
         "S25 general/nki/ (examples, tutorials, programming_model.rst)", V25),
    Rule("struct.is-operator", (N,), E,
         "is / is not are not supported (nki 0.3); comparisons with None, which the nki 0.3 "
         "library kernels use, are not flagged", "use == / !=", S29_MIG, V3),
    Rule("struct.kw-only-kernel", (N,), E,
         "the keyword-only separator * is not supported in a kernel signature (nki 0.3)",
         "move defaulted parameters to the end instead", S29_MIG, V3),
    Rule("struct.list-argument", (N,), E,
         "list kernel arguments are not supported (nki 0.3)", "use a tuple", S29_MIG, V3),
    Rule("syntax", BOTH, E, "the file is not valid Python", "fix the syntax error",
         "Python grammar", "-"),
)

RULE_BY_ID = {r.id: r for r in RULES}

# Documented names the API stubs and autosummary pages do not list (found in prose examples).
EXTRA_NAMES: tuple[Name, ...] = (
    Name(C, "nki", "trace", "S25 general/nki/api/nki.errors.rst (@nki.trace examples)", V25),
)

# ALU operators that take one input: tensor_scalar's operand must be None or 0 with them
# (S29 nki/api/nki/isa/__init__.py::tensor_scalar, param operand0: "e.g., nl.abs").
UNARY_ALU = frozenset({"abs", "rsqrt", "reciprocal", "square", "relu", "invert", "logical_not"})

# Reduction functions the docs accept where a reduction operator is taken.
REDUCE_ALIASES: dict[str, str] = {"max": "maximum", "min": "minimum"}
REDUCE_ALIASES_SOURCE = f"{S25_ISA}::tensor_scalar_reduce (reduce_op: nl.max or nl.min)"

_ENGINES = ("tensor", "vector", "scalar", "gpsimd", "unknown")

NAME_STATUS: tuple[NameStatus, ...] = (
    NameStatus(N, "nki.language", "arange", E, "slices or .ap() access patterns", S29_BETA2,
               "nki 0.2"),
    NameStatus(N, "nki.language", "mgrid", E, "slices or .ap() access patterns", S29_BETA2,
               "nki 0.2"),
    NameStatus(N, "nki.language", "par_dim", E,
               "a leading partition dimension (block dimensions were removed)", S29_BETA2,
               "nki 0.2"),
    NameStatus(N, "nki.language", "affine_range", D, "nl.static_range (or Python range())",
               f"{S29_NL}::affine_range", V3),
    NameStatus(N, "nki.language", "sequential_range", D, "nl.static_range (or Python range())",
               f"{S29_NL}::sequential_range", V3),
    NameStatus(N, "nki.isa", "activation_reduce", D,
               "nisa.activation(..., reduce_op=nl.add, reduce_res=..., "
               "reduce_cmd=nisa.reduce_cmd.reset_reduce)", f"{S29_ISA}::activation_reduce", V3),
    NameStatus(N, "nki.isa", "tensor_copy_dynamic_src", D,
               "nisa.tensor_copy with .ap(scalar_offset=...)", S29_MIG, V3),
    NameStatus(N, "nki.isa", "tensor_copy_dynamic_dst", D,
               "nisa.tensor_copy with .ap(scalar_offset=...)", S29_MIG, V3),
    # deprecated after 0.3: flagged only with --nki-version at or above their version
    NameStatus(N, "nki.language", "static_range", D, "Python range()",
               "SH nki/api/nki/language/__init__.py::static_range (tag v2.32.0)", "nki 0.6"),
) + tuple(
    NameStatus(N, "nki.isa", f"{e}_engine", D, f"nisa.engine.{e}",
               "SH nki/api/nki/isa/__init__.py (tag v2.31.0)", "nki 0.5") for e in _ENGINES
)
