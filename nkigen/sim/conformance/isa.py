"""Conformance rows for instruction-level rules (``nki.isa``); see the package docstring.

Every row cites the API document of the version it applies to: SH = aws-neuron-sdk HEAD
``nki/api/`` (current standalone nki, 0.3), S25 = tag v2.25.0 ``general/nki/api/`` (classic
neuronxcc.nki). Where the two generations state the same rule the row is ``Api.BOTH`` and cites
the current docstring first.
"""

from __future__ import annotations

from nkigen.sim.conformance import Api, Rule, Status

__all__ = ["RULES", "Api", "Rule", "Status"]

SH = "SH nki/api/nki/isa/__init__.py"
S25 = "S25 general/nki/api/nki/isa/__init__.py"
SH_T = "SH nki/api/nki.api.shared.rst"
S25_T = "S25 general/nki/api/nki.api.shared.rst"
S25_E = "S25 general/nki/api/nki.errors.rst"
SH_A2 = "SH nki/guides/architecture/trainium2_arch.rst"
T = "tests/test_conformance_isa.py::"
M = "tests/test_sim_mutants.py::"
P9 = "tests/test_sim_public9.py::"
P10 = "tests/test_sim_public10.py::"
B, N, C = Api.BOTH, Api.NKI, Api.CLASSIC
E, K, U = Status.ENFORCED, Status.COMPUTED, Status.UNMODELLED
V = "nki 0.3 / SDK 2.25"


def _r(id_: str, api: Api, version: str, source: str, rule: str, status: Status, test: str,
       note: str = "") -> Rule:
    return Rule("isa." + id_, api, version, source, rule, status, T + test, note)


RULES: tuple[Rule, ...] = (
    # ---- operator tables -----------------------------------------------------------------
    _r("alu.table", B, V, f"{SH_T} tbl-aluop; {S25_T} tbl-aluop",
       "op= of tensor_tensor / tensor_scalar / tensor_reduce / scans must be in the ALU operator "
       "table (no divide, no transcendental functions)", E, "test_alu_op_outside_table_rejected",
       "union of both tables accepted (SH adds abs_max/abs_min/square/relu -- abs_max/abs_min "
       "NeuronCore-v4 only, isa.alu.abs_max_v4 --, S25 has "
       "logical_not); language-level nl.divide etc. stay legal"),
    _r("alu.bitvec_int", B, V, f"{SH_T} tbl-aluop; {SH} tensor_tensor",
       "bitvec operators need integer input/output dtypes (bit patterns, no cast)", E,
       "test_bitvec_needs_integer_dtypes"),
    _r("alu.right_shift_logical", B, V, f"{SH_T} tbl-aluop; {S25_T} tbl-aluop",
       "right_shift is a logical shift (arithmetic right shift is not supported)", K,
       "test_right_shift_is_logical"),
    _r("alu.bitvec_scalar", B, V, f"{SH} tensor_scalar",
       "bitvec operators take integer scalar or integer (P, 1) operands and compute on bit "
       "patterns", K, "test_bitvec_scalar_operand"),
    _r("alu.reduce_legal", B, V, f"{SH_T} tbl-aluop 'Legal Reduction op'",
       "reductions only with ops marked legal (add, subtract, multiply, max, min, bitwise and/or/"
       "xor, logical and/or/xor); logical_xor reductions are legal", E,
       "test_reduction_ops_legal_table"),
    _r("alu.power_gpsimd", B, V, f"{SH} tensor_tensor; {S25_T} tbl-aluop engine column",
       "nl.power runs on the GpSimd engine only", E, "test_power_runs_on_gpsimd_only"),
    _r("act.table", B, V, f"{SH_T} tbl-act-func; {S25_T} tbl-act-func",
       "activation op= must be in the ScalarE activation-function table (no cos, tan, floor, "
       "...)", E, "test_activation_function_table",
       "union of both tables (SH adds gelu_apprx_sigmoid(_dx), prelu) for current kernels; "
       "classic kernels get the S25 table (isa.act.classic_table); prelu is not simulated"),
    _r("act.valid_range", B, V, f"{SH_T} tbl-act-func 'Valid Input Range'",
       "log/sin/arctan/sqrt/rsqrt/reciprocal outside their valid input range give invalid "
       "results", K, "test_activation_out_of_range_invalid",
       "the simulator writes NaN and warns: the exact extrapolated polynomial (SH: sin(9.0) "
       "~ 27.65) is not published"),
    _r("lang.sin_range_reduced", N, "nki 0.3", f"{SH_T} tbl-act-func note",
       "nl.sin range-reduces before the activation and is accurate on the full domain", K,
       "test_nl_sin_range_reduced"),
    # ---- tensor_tensor ---------------------------------------------------------------------
    _r("tensor_tensor.not_both_psum", B, V, f"{SH} tensor_tensor; {S25} tensor_tensor",
       "data1 and data2 cannot both be in PSUM", E, "test_tensor_tensor_inputs_not_both_psum"),
    _r("engine.gpsimd_no_psum", B, V, f"{SH} tensor_copy / tensor_tensor",
       "the GpSimd engine cannot access PSUM", E, "test_gpsimd_cannot_access_psum"),
    _r("tensor_tensor.shapes", B, V, f"{SH} tensor_tensor",
       "both inputs have the same partition size and elements per partition", E,
       "test_tensor_tensor_shapes_match"),
    # ---- tensor_scalar ---------------------------------------------------------------------
    _r("tensor_scalar.gpsimd_rsqrt", B, V, f"{SH} tensor_scalar engine=; {S25} tensor_scalar; "
       f"{S25_T} tbl-aluop engine column",
       "tensor_scalar on GpSimd only for rsqrt (the other op may be add/multiply)", E,
       "test_tensor_scalar_gpsimd_rsqrt_only",
       "the docstrings say 'only allowed for rsqrt'; the engine column of S25 tbl-aluop lists "
       "add/multiply on GpSimd, so rsqrt fused with add/multiply is accepted"),
    _r("tensor_scalar.scalar_pairs_v3", B, "NC-v3+", f"{SH} tensor_scalar; {S25} tensor_scalar",
       "ScalarE (trn2) supports only (multiply, add), (multiply, None), (add, None)", E,
       "test_tensor_scalar_scalar_engine_pairs"),
    _r("tensor_scalar.scalar_v2", B, "NC-v2", f"{S25_T} tbl-aluop engine column and note",
       "ScalarE ALU ops on NeuronCore-v2 are rsqrt, reciprocal, abs (add/multiply from "
       "NeuronCore-v3)", E, "test_tensor_scalar_scalar_engine_v2"),
    _r("tensor_scalar.same_class", B, V, f"{SH} tensor_scalar; {S25} tensor_scalar",
       "op0 and op1 are both bitvec or both arithmetic", E, "test_tensor_scalar_same_op_class"),
    _r("tensor_scalar.bitvec_vector", B, V, f"{SH} tensor_scalar; {S25} tensor_scalar",
       "bitvec tensor_scalar runs on the Vector engine only", E,
       "test_tensor_scalar_bitvec_vector_only"),
    _r("tensor_scalar.operand_fp32", N, "nki 0.3", f"{SH} tensor_scalar; {S25_T} weak scalars",
       "arithmetic operands must be float32: a (P, 1) tile or a typed NumPy scalar of another "
       "dtype is rejected", E, "test_tensor_scalar_operands_float32",
       "Python number literals are compile-time immediates and accepted (nki-library kernels "
       "pass operand0=-1, the SDK scan test initial=0); applied to the classic API too"),
    _r("tensor_scalar.unary_operand", N, "nki 0.3", f"{SH} tensor_scalar operand0",
       "operand of a unary operator is None or 0", E, "test_tensor_scalar_unary_operand"),
    _r("tensor_scalar.binary_operand", B, V, f"{SH} tensor_scalar operand0 / operand1; {S25} "
       "tensor_scalar operand0", "the operand of a binary operator is a scalar or a (P, 1) "
       "tile: None (a dropped operand) is an error", E,
       "test_tensor_scalar_binary_operand_is_a_value",
       "kernel_mutants probe (mutants15): operand0=None with nl.add ran as x + 0"),
    _r("tensor_scalar.op1_none", B, V, f"{SH} tensor_scalar; {S25} tensor_scalar",
       "op1 and operand1 are None together when unused", E,
       "test_tensor_scalar_operand1_without_op1"),
    _r("tensor_scalar.operand_shape", B, V, f"{SH} tensor_scalar; {S25} tensor_scalar",
       "an operand is a scalar or a (P, 1) tile", E, "test_tensor_scalar_operand_shape"),
    _r("tensor_scalar.rsqrt_engine", B, V, f"{S25_T} tbl-aluop engine column; {SH_T} "
       "nki-engine-sel", "rsqrt runs on GpSimd or ScalarE, not VectorE (unset engine picks "
       "GpSimd)", E, "test_rsqrt_not_on_vector_engine"),
    # ---- activation ------------------------------------------------------------------------
    _r("activation.reduce_add", N, "nki 0.3", f"{SH} activation",
       "activation reduce_op must be nl.add", E, "test_activation_reduce_op_add_only",
       "classic activation (S25) states no such limit: there only NeuronCore-v2 is add-only"),
    _r("activation.classic_reduce", C, "SDK 2.25", f"{S25} activation",
       "classic activation reduces with any legal reduction op from NeuronCore-v3 (add only on "
       "v2); np.copy is accepted as the identity", K, "test_classic_activation_reduce_op"),
    _r("activation_reduce.v2_add", B, "NC-v2", f"{SH} activation_reduce; {S25} "
       "activation_reduce", "activation_reduce on NeuronCore-v2 reduces with add only", E,
       "test_activation_reduce_v2_add_only",
       "SH activation says add only while activation_reduce says v2 only: each docstring is "
       "followed for its own API"),
    _r("activation.scale_fp32", B, V, f"{SH} activation; {S25_E} "
       "err_activation_scale_invalid_type", "scale is float32 (scalar or (P, 1) tile)", E,
       "test_activation_scale_float32", "a Python literal (scale=2) is an immediate and accepted "
       "(nki-library passes scale=1/sqrt(d)); typed non-float32 scalars are rejected"),
    _r("activation.bias_dtype", C, "SDK 2.25", f"{S25_E} err_activation_bias_invalid_type",
       "bias is a (P, 1) vector (no scalar bias) of float32, float16 or bfloat16", E,
       "test_activation_bias_dtype_classic",
       "current API (SH): any dtype but tfloat32, which the simulator stores as float32"),
    _r("activation.scalar_bias_v3", B, "NC-v2", f"{SH} activation Layout",
       "a scalar bias needs NeuronCore-v3; on v2 bias is a (P, 1) vector", E,
       "test_activation_scalar_bias_needs_v3"),
    _r("activation.reciprocal_bias_v2", B, "NC-v2", f"{SH_T} nki-engine-sel; {S25_T}",
       "activation(op=reciprocal) takes no bias on NeuronCore-v2", E,
       "test_activation_reciprocal_bias_v2"),
    _r("activation.reduce_cmd", B, V, f"{SH} activation pseudo-code",
       "reset zeroes the registers, reduce/reset_reduce add the output's reduction, idle "
       "leaves them alone; reduce_res reads them out", K, "test_activation_reduce_cmd_semantics"),
    _r("activation.psum_data_reduce", N, "nki 0.3", f"{SH} activation Memory types",
       "data may be a PSUM tile: exp(data * scale + bias) of matmul scores read in PSUM, "
       "with the row sum in reduce_res (reduce_cmd=reset_reduce)", K,
       "test_activation_reads_psum_with_reduce"),
    _r("activation.math", B, V, f"{SH} activation",
       "dst = op(data * scale + bias) in float32 with per-partition scale/bias", K,
       "test_activation_scale_bias_numerics"),
    # ---- tensor_reduce / scalar_tensor_tensor / scan ------------------------------------------
    _r("tensor_reduce.negate_arith", B, V, f"{SH} tensor_reduce negate",
       "negate only with arithmetic reduction operators (not bitvec)", E,
       "test_tensor_reduce_negate_bitvec"),
    _r("tensor_reduce.axes", B, V, f"{SH} tensor_reduce axis",
       "reduction axes are the last contiguous free dims ending at the final dim", E,
       "test_tensor_reduce_axes"),
    _r("reduce.axis_type", B, V, f"{SH} tensor_reduce axis; S25 general/nki/api/nki/language/"
       "__init__.py sum / max / min / mean (axis: int or tuple/list of ints)",
       "a reduction axis is an int or a tuple/list of ints (nki.isa tensor_reduce and the nl.* "
       "reductions); None or a string is an error", E,
       "test_reduction_axis_is_an_int_or_ints",
       "classic nl.sum(axis=None) raised a TypeError inside the simulator before (mutants15)"),
    _r("tensor_reduce.negate", B, V, f"{SH} tensor_reduce negate",
       "negate multiplies the reduction by -1", K, "test_tensor_reduce_negate_computes"),
    _r("tensor_reduce.psum_data", N, "nki 0.3", f"{SH} tensor_reduce Memory types",
       "data may be in PSUM (a row max read straight from matmul scores, negated)", K,
       "test_tensor_reduce_reads_psum"),
    _r("scalar_tensor_tensor.arith", B, V, f"{SH} scalar_tensor_tensor",
       "op0 and op1 are arithmetic operators (no bitvec)", E,
       "test_scalar_tensor_tensor_no_bitvec"),
    _r("tensor_tensor_scan.ops", B, V, f"{SH} tensor_tensor_scan",
       "op0/op1 are binary arithmetic operators; a scalar initial is float32; "
       "r[i] = op1(op0(d0[i], r[i-1]), d1[i])", E, "test_scan_ops_arithmetic_binary"),
    # ---- transposes --------------------------------------------------------------------------
    _r("nc_transpose.dtype", N, "nki 0.3", f"{SH} nc_transpose Data types",
       "dst dtype equals data dtype", E, "test_nc_transpose_dst_dtype_equals_data"),
    _r("nc_transpose.fp8_tensor_v3", N, "nki 0.3, NC-v3+",
       "SH nki/guides/architecture/trainium2_arch.rst Built-in Transpose Support (note; same "
       f"text at tag v2.29.0); {SH} nc_transpose Data types",
       "a TensorE transpose of float8 data writes 16-bit elements to PSUM on NeuronCore-v3+, "
       "which no float8 dst (the dtype the API requires) holds", E,
       "test_nc_transpose_fp8_tensor_engine_v3",
       "docs conflict (the API allows any dtype with dst = data dtype; the arch guide's note is "
       "absent from S25): enforced for the current API on trn2; nki-library's _transpose_sbuf "
       "(HEAD d2ad3a5) transposes float8 through bfloat16 for this reason"),
    _r("nc_transpose.tensor_v2_fp32", N, "nki 0.3, NC-v2",
       "SH nki/guides/architecture/trainium2_arch.rst Built-in Transpose Support (same text at "
       f"tag v2.29.0); {SH} nc_matmul Data types; {SH} nc_transpose Data types",
       "a TensorE transpose on NeuronCore-v2 writes float32 PSUM (16-bit PSUM output is "
       "NeuronCore-v3 transpose mode), so its dst (= data dtype) is float32", E,
       "test_nc_transpose_tensor_engine_v2_is_float32",
       "classic form not enforced: S25 nc_transpose(dtype=) casts the result and public "
       "trn1-era classic kernels assign it into float32 PSUM (nki-samples attention.py "
       "transpose_p_local)"),
    _r("nc_transpose.classic_dtype", C, "SDK 2.25", f"{S25} nc_transpose dtype=",
       "dtype= different from the data adds a cast of the transposed result", K,
       "test_classic_nc_transpose_dtype_casts"),
    _r("tensor_engine.transpose_nan", B, "NC-v2 / NC-v3", f"{SH} nc_transpose and nc_matmul "
       "Transpose mode", "TensorE transpose is a matmul with an identity on NeuronCore-v2 "
       "(NaN/Inf spread along the output row); from NeuronCore-v3 nc_transpose and "
       "is_transpose=True are bit-accurate", K, "test_tensor_engine_transpose_nan_per_generation"),
    _r("nc_transpose.sizes", B, V, f"{SH} nc_transpose Tile size",
       "TensorE transposes up to [128, 128], VectorE up to [32, 32]", E,
       "test_nc_transpose_size_limits"),
    _r("nc_transpose.tensor_memory", B, V, f"{SH} nc_transpose Memory types",
       "TensorE transpose reads SBUF and writes PSUM", E, "test_nc_transpose_tensor_engine_memory"),
    _r("dma_transpose.dtype_size", B, "NC-v3", f"{SH_A2} DMA transpose; {SH} dma_transpose",
       "DMA transpose moves 2-byte and 4-byte dtypes only (no fp8/int8)", E,
       "test_dma_transpose_dtype_sizes",
       "the arch guide (2 and 4 bytes) is followed for dge_mode=unknown; hwdge is 2 bytes"),
    _r("dma_transpose.axes", B, V, f"{SH} dma_transpose; {S25} dma_transpose",
       "permutations (1, 0), (2, 1, 0), (3, 1, 2, 0) only", E, "test_dma_transpose_permutations"),
    _r("dma_transpose.dtype_equal", N, "nki 0.3", f"{SH} dma_transpose src",
       "src.dtype == dst.dtype", E, "test_dma_transpose_dtype_equal"),
    _r("dma_transpose.hwdge", N, "nki 0.3", f"{SH} dma_transpose DMA Direct Transpose",
       "hwdge: 2-D src has 16 rows; 3-D/4-D src.shape[0] in {1,2,4,8,16}, last dim <= 128, "
       "2-byte dtype", E, "test_dma_transpose_hwdge"),
    _r("dma.hwdge_v3", N, "nki 0.3", f"{SH} dma_copy dge_mode",
       "hardware DGE needs NeuronCore-v3 or newer", E, "test_dma_copy_hwdge_v3"),
    _r("dma.no_psum", B, V, f"{SH} dma_copy Memory types",
       "DMA reads/writes SBUF or HBM, not PSUM", E, "test_dma_cannot_access_psum"),
    _r("dma_copy.cast", B, V, f"{SH} dma_copy Data types",
       "different src/dst dtypes are cast through float32", K, "test_dma_copy_casts"),
    _r("dma_copy.count", B, V, f"{SH} dma_copy Tile size",
       "src and dst have the same element count", E, "test_dma_copy_element_counts"),
    _r("dma_copy.vector_offset_stride", N, "nki 0.3",
       "SH nki/deep-dives/nki-aps.rst 'Vector Dynamic Access'; S29 "
       "nki/deep-dives/nki-beta2-migration-guide.rst (same text)",
       "a vector_offset access pattern's leading step must equal the base tensor's dim-0 stride "
       "(the hardware scales the offsets by that stride and ignores the pattern's step)", E,
       "test_vector_offset_row_stride_is_the_base_tensors",
       "the base may be a whole-tensor reshape, e.g. (numel, 1) for a flat-index gather"),
    _r("dma_compute.rmw", N, "nki 0.3", f"{SH} dma_compute 'Read-Modify-Write with "
       "vector_offset'",
       "gather RMW dst(SBUF) += src(HBM)[idx] and scatter RMW dst(HBM)[idx] += src(SBUF) in "
       "float32; exactly two sources (one is dst's own view), unique_indices=True, scales 1.0",
       E, "test_dma_compute_read_modify_write_with_vector_offset",
       "a scatter whose rows repeat is a located error (unique_indices=True promises distinct "
       "rows)"),
    _r("dma_copy.dge_indirect", N, "nki 0.3",
       f"{SH} dma_copy (dynamic addresses with sw_dge/hw_dge; gather/scatter with sw_dge); "
       "SH nki/deep-dives/nki-dge.rst (none: no dynamic addresses or indices; swdge: the only "
       "indirect mode; hwdge: no indirect operations)",
       "a vector_offset gather/scatter needs dge_mode unknown or swdge; a scalar_offset "
       "(dynamic start address) is refused with dge_mode=none", E,
       "test_dge_mode_of_dynamic_and_indirect_dma",
       "dge_mode may be given as the enum or its integer value; a scalar-offset view that is "
       "re-sliced before the DMA is no longer recognised as dynamic (accepted)"),
    _r("dma_transpose.dge_direct", N, "nki 0.3",
       f"{SH} dma_transpose 'DMA Direct Transpose Constraints'",
       "a direct (non-indirect) dma_transpose takes dge_mode unknown or hwdge only", E,
       "test_dge_mode_of_dynamic_and_indirect_dma"),
    _r("dma_copy.classic_rmw", C, "SDK 2.25", f"{S25} dma_copy dst_rmw_op",
       "dst_rmw_op=np.add adds src into dst (computed in float32, cast to dst; an accumulation, "
       "legal across affine_range iterations); np.add is the only operator, and with it "
       "oob_mode must be error", E, "test_classic_dma_copy_rmw_and_hwdge",
       "the current API (SH) documents no dst_rmw_op; an indirect source with dst_rmw_op stays "
       "unsupported"),
    _r("dma.classic_hwdge_v3", C, "SDK 2.25, NC-v2", f"{S25} dma_copy dge_mode",
       "classic dma_copy(dge_mode=hwdge) needs NeuronCore-v3+", E,
       "test_classic_dma_copy_rmw_and_hwdge"),
    Rule("isa.dma_copy.indirect_v3", N, "nki 0.3, NC-v2",
         "SH nki/deep-dives/nki-dge.rst Mode Selection Summary (swdge: 'Any (indirect: v3+)'); "
         "SH nki/api/nki/isa/__init__.py dma_copy Indirect addressing (no generation given)",
         "a vector_offset (gather/scatter) DMA may need NeuronCore-v3+", U,
         "tests/test_review9_forms.py::test_vector_offset_gather_is_accepted_on_both_generations",
         "doc conflict: only the DGE summary table names v3+ (its swdge bullets restrict "
         "indirect transpose to v3+); the dma_copy and access-pattern pages give no generation "
         "and the classic API documents indirect DMA for NeuronCore-v2. Accepted on trn1 "
         "with a located warning naming both documents (sim/nki/indirect.py INDIRECT_V2, "
         "vector_offset and scalar_offset); generated nki-dialect trn1 stages with a gather "
         "(embedding_lookup, cross_entropy_labels, reversed and divided row reads, "
         "codegen/revrows.py) say it in their docstring and point to the classic dialect "
         "(review 9 R9-6)"),
    Rule("isa.dma_copy.index_width", B, V,
         f"{SH} dma_copy 'Indirect addressing' (a uint32 index tile); SH "
         "nki/deep-dives/nki-aps.rst 'Vector Dynamic Access' (int32); S25 "
         "general/nki/test/test_nki_nl_load_store_indirect.py (int32)",
         "the index tile of an indirect DMA is 32-bit (int32 / uint32) in every documented form",
         U, "tests/test_review12_forms.py::test_narrow_index_tile_is_warned",
         "no document states the width for dma_copy (re-checked at SH HEAD and S25: the only "
         "stated index dtypes are uint32 for the indirect dma_transpose -- SH nki-dge.rst, "
         "enforced by isa.dma_transpose.indirect --, uint16 for local_gather and uint32 for "
         "gather_flattened); an 8- or 16-bit index tile runs with a located warning "
         "(sim/nki/indirect.py INDEX_WIDTH, vector_offset and classic index tiles); generated "
         "gathers load narrower ids into an int32 column (codegen/gather.py, review 12 R12-2)"),
    Rule("isa.dma_copy.scalar_offset", N, "nki 0.3+ (SH)",
         f"{SH} dma_copy 'Indirect addressing'; SH nki/api/nki/language/__init__.py "
         "NkiTensor.ap; SH nki/deep-dives/nki-aps.rst",
         "scalar indirection: .ap(pattern, offset, scalar_offset=t, indirect_dim=d) starts the "
         "view t * stride(d) elements further; t is a 1x1 SBUF tensor (or a VirtualRegister); "
         "scalar_offset and vector_offset are mutually exclusive", E,
         P9 + "test_scalar_offset_is_one_sbuf_element",
         "VirtualRegister offsets are unsupported (registers are not simulated); the value is "
         "the tile's content when .ap() is evaluated, i.e. when its DMA is issued; cost-only "
         "runs take 0"),
    Rule("isa.dma_copy.oob_skip", N, "nki 0.3+ (SH)", f"{SH} dma_copy oob_mode",
         "a dynamic DMA address out of bounds raises by default (oob_mode.error); "
         "oob_mode.skip skips the transfer", K,
         P9 + "test_oob_skip_skips_the_transfer_and_error_mode_raises",
         "for scalar_offset views the whole transfer is skipped when any element leaves the "
         "tensor"),
    Rule("isa.dma_copy.vector_offset_scatter", N, "nki 0.3", f"{SH} dma_copy "
         "'Indirect scatter example'",
         "vector_offset on the destination: row p of the SBUF source goes to row idx[p] of the "
         "HBM tensor; idx is an integer (P, 1) SBUF tile; out-of-range rows raise or, with "
         "oob_mode.skip, are skipped", K,
         P9 + "test_vector_offset_scatter_writes_the_indexed_rows",
         "duplicate indices: the last row written wins (the doc does not say)"),
    Rule("isa.dma_transpose.indirect", N, "nki 0.3, NC-v3+", f"{SH} dma_transpose 'DMA "
         "Indirect Transpose Constraints'",
         "gather-transpose: rows indices.T.flatten()[:src.shape[0]] of an HBM tensor, then the "
         "transpose; 2-byte dtype, src.shape[-1] <= 128, src.shape[0] % 16 == 0, uint32 "
         "indices in SBUF with 16..128 rows (a multiple of 16; 128 when several columns), a 4-D "
         "src has shape[1] or shape[2] == 1, dge_mode unknown/swdge, trn2+", E,
         P9 + "test_gather_transpose_constraints_and_skip"),
    Rule("isa.registers", N, "nki 0.3", f"{SH} VirtualRegister, register_alloc / "
         "register_move / register_load / register_store; SH nki/api/nki/language "
         "dynamic_range, fori_loop, while_loop (NKI 0.6)",
         "registers hold 32-bit integers; register_load / register_store move exactly one "
         "element of an HBM or SBUF tensor; dynamic_range's step is a compile-time positive "
         "integer; a register used before it holds a value is an error", E,
         P9 + "test_register_rules",
         "the simulator runs eagerly: a register holds the integer loaded, dynamic loops run "
         "their iterations in order, a register can be a scalar_offset; loading a never "
         "written tensor is an error; a cost-only run cannot follow registers loaded from "
         "memory (unsupported)"),
    Rule("isa.core_barrier", N, "nki 0.3, NC-v3+", f"{SH} core_barrier",
         "core_barrier needs NeuronCore-v3 or newer, cores=(0, 1) and data in shared HBM", E,
         P9 + "test_core_barrier_rules",
         "a single-program run passes the barrier; on an SPMD grid the programs run "
         "interleaved (nkigen/sim/spmd.py): every program waits at the barrier, a program "
         "that returns while another waits is a deadlock error, and accesses on either side "
         "are ordered (no SPMD race between them)"),
    Rule("isa.sendrecv", N, "nki 0.3, NC-v3+", f"{SH} sendrecv",
         "sendrecv needs NeuronCore-v3 or newer and LNC=2 (an SPMD grid of two programs, ranks "
         "0/1); src and dst are SBUF tiles of one dtype and shape; the ranks of the two "
         "programs pair up (a sends to b when b receives from a, same pipe_id); gpsimd_dma "
         "moves at most 1024/512/256 bytes per partition for 32/16/8-bit data", E,
         P9 + "test_sendrecv_ranks_must_pair_and_gpsimd_limit",
         "each program's dst receives the peer's src as it was when both reached the call "
         "(tests/test_sim_public9.py::test_sendrecv_swaps_tiles_between_the_two_programs)"),
    _r("dma_compute.add", N, "nki 0.3", f"{SH} dma_compute",
       "dma_compute reduces with add only", E, "test_dma_compute_add_only"),
    # ---- nc_matmul ---------------------------------------------------------------------------
    _r("nc_matmul.fp8_e4m3fn_v4", N, "nki 0.3, NC-v2/v3", f"{SH} nc_matmul Data types",
       "float8_e4m3fn (OCP) operands need NeuronCore-v4; earlier cores take float8_e4m3 / "
       "float8_e5m2", E, "test_matmul_fp8_e4m3fn_needs_v4",
       "the classic API has no float8_e4m3fn at all (S25 dtype table)"),
    _r("nc_matmul.fp32_pairing", B, V, f"{SH} nc_matmul Data types",
       "a float32/tfloat32 operand pairs only with float32/tfloat32", E,
       "test_matmul_fp32_pairs_with_fp32"),
    _r("nc_matmul.tiling_both", B, V, f"{SH} nc_matmul Tiling mode; {S25} nc_matmul",
       "tile_position and tile_size are set together or not at all", E,
       "test_matmul_tiling_needs_both"),
    _r("nc_matmul.tile_size", N, "nki 0.3", f"{SH} nc_matmul Tiling mode",
       "PE tile sizes are 64/128 (NeuronCore-v2) or 32/64/128 (v3+)", E,
       "test_matmul_tile_size_per_generation",
       "the parameter notes say column_size must be 128 while the prose allows column tiling "
       "in the same way as rows: the prose is followed"),
    _r("nc_matmul.tile_size_classic", C, "SDK 2.25", f"{S25} nc_matmul tile_size",
       "PE tile sizes are multiples of 32, not 32 on NeuronCore-v2", E,
       "test_classic_matmul_tiling"),
    _r("nc_matmul.tile_position", B, V, f"{SH} nc_matmul Tiling mode",
       "tile start is a multiple of the tile size and start + size <= 128", E,
       "test_matmul_tile_position", "classic: multiples of 32 (S25)"),
    _r("nc_matmul.tile_fits", B, V, f"{SH} nc_matmul Tile size; {S25} nc_matmul",
       "the stationary tile fits the PE tile (K <= row size, M <= column size)", E,
       "test_matmul_stationary_fits_tile"),
    _r("nc_matmul.accumulate_true", N, "nki 0.3", f"{SH} nc_matmul Accumulation mode",
       "accumulate=True needs the PSUM location started by an earlier matmul (uninitialised is "
       "undefined on all targets; memset/tensor_copy-initialised is undefined on NeuronCore-v2/"
       "v3)", E, "test_matmul_accumulate_true_needs_matmul_init",
       "classic `psum += nc_matmul` keeps its documented accumulate-onto-zeros semantics"),
    _r("nc_matmul.accumulate_none", N, "nki 0.3", f"{SH} nc_matmul Accumulation mode",
       "accumulate=None: the first matmul into a location overwrites, later ones add", K,
       "test_matmul_accumulate_none_first_overwrites"),
    _r("nc_matmul.accumulate_false", N, "nki 0.3", f"{SH} nc_matmul Accumulation mode",
       "accumulate=False overwrites a PSUM location earlier matmuls wrote (a new accumulation "
       "group in a reused tile)", K, "test_matmul_accumulate_false_overwrites"),
    _r("nc_matmul.sizes", B, "NC-v2/v3", f"{SH} nc_matmul Tile size",
       "K <= 128, stationary free <= 128, moving free <= 512", E, "test_matmul_size_limits"),
    _r("nc_matmul.memory", B, V, f"{SH} nc_matmul Memory types",
       "stationary/moving in SBUF, dst in PSUM", E, "test_matmul_memory_types"),
    _r("nc_matmul.dst_fp32", B, "NC-v2/v3", f"{SH} nc_matmul Data types",
       "dst is float32 on NeuronCore-v2/v3", E, "test_matmul_dst_float32",
       "except is_transpose=True on NeuronCore-v3 in the current API "
       "(isa.nc_matmul.transpose_dtype)"),
    Rule("isa.nc_matmul.transpose_identity", B, "nki 0.3 / SDK 2.25, NC-v3+",
         f"{SH} nc_matmul 'Transpose mode'; {SH} nc_transpose (equivalent to nc_matmul with "
         f"is_transpose=True); {SH_A2} 'Built-in Transpose Support'; {S25} nc_matmul "
         "is_transpose ('a transpose operation with moving as an identity matrix')",
         "is_transpose=True turns the stationary tile with an identity matrix as the moving "
         "operand (a 0/1 matrix with one 1 per column); on NeuronCore-v2 the flag only tags "
         "the matmul for the profiler and any moving operand multiplies", E,
         P10 + "test_transpose_mode_moving_identity_passes_one_extra_one_fails",
         "checked when values are simulated (cost-only runs have no values); classic: "
         "test_classic_is_transpose_hint_needs_an_identity_on_v3"),
    Rule("isa.nc_matmul.transpose_dtype", N, "nki 0.3, NC-v3+",
         f"{SH} nc_transpose Data types; {SH_A2} 'Built-in Transpose Support'",
         "is_transpose=True on NeuronCore-v3+: dst has the stationary (data) dtype (fp32 -> "
         "fp32, bf16/fp16 -> bf16/fp16 PSUM); float8 data writes 16-bit elements no float8 "
         "dst holds", E, P10 + "test_transpose_mode_dst_dtype_is_the_data_dtype",
         "nki-library bwmm_shard_on_I transposes bf16 into bf16 PSUM on gen3"),
    _r("nc_matmul.double_row", B, "NC-v3+", f"{SH} nc_matmul Performance mode / Layout",
       "perf_mode=double_row: NeuronCore-v3+, fp8 operands laid out [K, 2, F], contraction "
       "over K and the 2; not with column tiling", E, "test_matmul_double_row",
       "classic kernels spell it perf_mode='double_row_gen3' (SDK test)"),
    _r("nc_matmul.onezero", B, V, f"{S25} / {SH} nc_matmul is_stationary_onezero",
       "is_*_onezero: the operand holds only 0/1; 2x faster for a float32 operand, no impact "
       "otherwise (cost model: 4x -> 2x)", E,
       "test_matmul_onezero_hint_halves_fp32_cost_and_must_be_true"),
    _r("nc_matmul.double_row_cost", N, "NC-v3+", "SH nki/guides/architecture/trainium2_arch.rst "
       "Double FP8 Matmul Performance", "double_row: the time of a K=128 bf16 matmul for a "
       "256 contraction, i.e. the fp8 peak is twice the bf16 one (158 vs 79 TFLOPS)", K,
       "test_double_row_counts_the_doubled_contraction_at_the_fp8_peak"),
    # ---- copies, memset, iota, affine_select --------------------------------------------------
    _r("tensor_copy.scalar_v2", B, "NC-v2", f"{SH} tensor_copy",
       "no ScalarE tensor_copy on NeuronCore-v2 (use activation(op=nl.copy))", E,
       "test_tensor_copy_scalar_engine_v2"),
    _r("tensor_copy.classic_scalar_v2", C, "SDK 2.25", f"{S25} tensor_copy",
       "classic ScalarE tensor_copy on NeuronCore-v2 goes through float32 (int32 above 2^24 "
       "rounds); from NeuronCore-v3 equal dtypes copy bit-exactly", K,
       "test_classic_scalar_copy_v2_through_fp32",
       "the current API (SH) has no ScalarE tensor_copy on NeuronCore-v2 at all: each "
       "generation follows its docstring"),
    _r("tensor_copy.classic_int_no_engine", C, "SDK 2.25 NC-v2",
       f"{S25} tensor_copy (engine=unknown: the compiler picks; ScalarE on NeuronCore-v2 casts "
       f"through FP32); {S25_T} tbl-act-func (nl.copy is the Identity activation)",
       "a classic copy of int32/uint32 data into the same dtype with no engine given "
       "(nisa.tensor_copy without engine=, nl.copy) on NeuronCore-v2 may land on ScalarE and "
       "round values beyond 2^24: refused, name engine=nisa.vector_engine", E,
       "test_classic_int_copy_without_engine_v2",
       "review 15 R15-1; NeuronCore-v3, 8/16-bit and float data, and dtype-changing copies "
       "(a float32 cast on every engine) pass"),
    _r("affine_select.classic_dtypes", C, "SDK 2.25", f"{S25} affine_select",
       "input/output tiles are float or 8/16-bit integer dtypes", E,
       "test_classic_affine_select_dtypes"),
    _r("tensor_copy.bit_exact", B, V, f"{SH} tensor_copy",
       "Vector/GpSimd copies with equal dtypes are bit-exact", K,
       "test_tensor_copy_bit_exact_same_dtype"),
    _r("memset.constant", B, V, f"{SH} memset; {S25} memset",
       "memset value is a compile-time constant number", E, "test_memset_value_constant"),
    _r("memset.engines", B, V, f"{SH} memset engine=", "memset runs on Vector or GpSimd", E,
       "test_memset_engines"),
    _r("iota.sbuf", B, V, f"{SH} iota Memory types", "iota writes SBUF", E, "test_iota_dst_sbuf"),
    _r("iota.pattern", B, V, f"{SH} iota",
       "pattern element count equals elements per partition; value = offset + p * "
       "channel_multiplier + sum(i_k * step_k)", E, "test_iota_pattern_count"),
    _r("iota.pattern_pairs", N, "nki 0.3", f"{SH} iota pattern; affine_select pattern",
       "the pattern of iota / affine_select is a list of [step, num] pairs", E,
       "test_pattern_is_a_list_of_step_num_pairs",
       "a flat [step, num] or a three-element entry raised a Python unpacking error inside the "
       "simulator before (mutants15)"),
    _r("iota.pattern_dims", B, V, f"{SH} iota; affine_select",
       "the pattern (iota, affine_select) has at most 4 [step, num] dimensions", E,
       "test_pattern_at_most_four_dims"),
    Rule("isa.iota.int32_values", B, V,
         f"{S25} iota (computed in 32-bit integer math); {SH} iota Data types; affine_select "
         "(the affine value 'similar to nisa.iota')",
         "every affine value of an iota / affine_select pattern (offset, channel multiplier, "
         "steps over their counts) fits int32", E,
         "tests/test_review14_forms.py::test_int32_affine_values_boundary",
         "numpy computes them in int64; on the engine they wrap (review 14 R14-1)"),
    _r("affine_select.on_false_fp32", B, V, f"{SH} affine_select Data types",
       "on_false_value is float32", E, "test_affine_select_on_false_float32"),
    _r("affine_select.sbuf", B, V, f"{SH} affine_select Memory types",
       "dst and on_true_tile are in SBUF", E, "test_affine_select_sbuf_only"),
    # ---- less common instructions -------------------------------------------------------------
    _r("range_select.args", B, V, f"{SH} range_select; {S25} range_select",
       "comparisons are equal/less/less_equal/greater/greater_equal; bounds are float32 (P, 1) "
       "tiles; on_true_tile is a float dtype; on_false_value is FP32_MIN; reduce_op is maximum; "
       "range_start + index < 2^24", E, "test_range_select_arguments"),
    _r("range_select.v3", B, "NC-v2", f"{SH} range_select note",
       "range_select needs NeuronCore-v3", E, "test_range_select_needs_v3"),
    _r("select_reduce.dtypes", N, "nki 0.3", f"{SH} select_reduce",
       "on_true not int32/uint32/tfloat32; predicate int8/uint8/int16/uint16; scalar on_false "
       "float32; reduce_res float; reduce_op maximum", E, "test_select_reduce_dtypes"),
    _r("tensor_scalar_reduce.args", B, V, f"{SH} tensor_scalar_reduce; {S25} "
       "tensor_scalar_reduce", "op0 arithmetic; reduce_op add/multiply/max/min (classic also "
       "subtract); operand0 float32; reduce_init only (and always) with load_reduce", E,
       "test_tensor_scalar_reduce_arguments"),
    _r("tensor_scalar_reduce.reverse0", B, V, f"{SH} tensor_scalar_reduce reverse0; {S25} "
       "tensor_scalar_reduce reverse0", "reverse0=True is '(not supported yet)'", E,
       "test_tensor_scalar_reduce_documented_limits"),
    _r("tensor_scalar_reduce.current", N, "nki 0.3", f"{SH} tensor_scalar_reduce",
       "reduce_op is add, multiply, max or min (no subtract); reduce_cmd is reset_reduce, "
       "reduce or load_reduce; reduce_res_negate negates the read-out, not the registers", E,
       "test_tensor_scalar_reduce_documented_limits",
       "S25 lists subtract among the reduce_ops and has no reduce_cmd / reduce_res_negate"),
    _r("bn_stats.fmax", B, V, f"{SH} bn_stats", "bn_stats reads at most 512 elements per "
       "partition (bn_stats_fmax); outputs (count, mean, var*count) of even/odd elements", E,
       "test_bn_stats_fmax"),
    _r("bn_aggr.input", B, V, f"{SH} bn_aggr",
       "bn_aggr input elements per partition are a multiple of 3", E, "test_bn_aggr_input"),
    _r("tensor_copy_predicated.args", B, V, f"{SH} tensor_copy_predicated",
       "predicate uint8/uint16/uint32; src and dst share a dtype; unselected dst unchanged", E,
       "test_tensor_copy_predicated_rules"),
    _r("tensor_copy_predicated.mask", C, "SDK 2.25", f"{S25} tensor_copy_predicated; {S25_T} "
       "'NKI API Masking'", "mask= restricts dst, src and predicate to the kept lanes; the other "
       "dst lanes keep their values", K, "test_classic_tensor_copy_predicated_mask"),
    _r("nc_stream_shuffle.mask", B, V, f"{SH} nc_stream_shuffle",
       "shuffle_mask has 32 entries in [0, 32) or 255", E, "test_stream_shuffle_mask"),
    _r("max8.sizes", B, V, f"{SH} max8", "8..16384 elements per partition; the 8 largest in "
       "descending order", E, "test_max8_sizes"),
    _r("find_index8.duplicates", N, "nki 0.3", f"{SH} nc_match_replace8 / nc_find_index8",
       "duplicate vals claim distinct matches: ascending for nc_find_index8, descending "
       "(vals processed 7..0) for nc_match_replace8", K, "test_find_index8_duplicates"),
    _r("find_index8.dtype", B, V, f"{SH} nc_find_index8", "dst is uint16 or uint32", E,
       "test_find_index8_dst_dtype"),
    _r("max8.ranks", N, "nki 0.3", f"{SH} max8; {SH} nc_find_index8",
       "max8 src and nc_find_index8 data are at most 3-D, vals at most 3-D; dst is a 2-D "
       "(P, 8) tile", E, "test_topk_operand_ranks",
       "nc_match_replace8's current docstring states no rank or size limit"),
    _r("max8.classic_ranks", C, "SDK 2.25",
       f"{S25} max8; {S25} nc_find_index8; {S25} nc_match_replace8",
       "max8 src / nc_find_index8 and nc_match_replace8 data are at most 5-D, vals at most 3-D; "
       "nc_match_replace8 data holds at most 16,384 elements per partition", E,
       "test_topk_operand_ranks"),
    _r("nc_n_gather.args", N, "nki 0.3", f"{SH} nc_n_gather",
       "indices are uint32 within [0, free size); SBUF only; dst dtype = data dtype", E,
       "test_n_gather_rules"),
    _r("nonzero_with_count.v3", N, "nki 0.3", f"{SH} nonzero_with_count note",
       "nonzero_with_count needs NeuronCore-v3", E, "test_nonzero_with_count_v3"),
    _r("tensor_partition_reduce.ops", B, V,
       f"{SH} tensor_partition_reduce; {S25} tensor_partition_reduce",
       "partition reduction with add, max, bitwise_or, bitwise_and; the current API adds "
       "nl.average (the partition mean, computed in float32)", E,
       "test_tensor_partition_reduce_ops", "classic (S25) lists no average"),
    _r("tensor_scalar_cumulative.op1", N, "nki 0.3", f"{SH} tensor_scalar_cumulative",
       "the cumulative op1 is add, subtract, multiply, max or min", E,
       "test_tensor_scalar_cumulative_op1"),
    _r("promotion.typed_scalar", B, V, f"{S25_T} nki-type-promotion weak scalars",
       "an explicitly typed scalar keeps its dtype (fp16 tile + np.float16 -> fp16); a weak "
       "float widens to float32", K, "test_typed_scalar_keeps_dtype"),
    # ---- second batch ---------------------------------------------------------------------
    _r("dma_copy.priority_v4", N, "nki 0.3", f"{SH} dma_copy priority",
       "priority= is NeuronCore-v4 only", E, "test_dma_copy_priority_and_engine"),
    _r("dma_copy.engine_hwdge", N, "nki 0.3", f"{SH} dma_copy engine",
       "engine= (sync/scalar) only with dge_mode=hwdge", E, "test_dma_copy_priority_and_engine"),
    _r("iota.int32_args", N, "nki 0.3", f"{SH} iota offset / channel_multiplier",
       "offset and channel_multiplier are int32", E, "test_iota_offsets_int32"),
    _r("tensor_scalar_cumulative.args", N, "nki 0.3", f"{SH} tensor_scalar_cumulative",
       "op0 arithmetic; no int32/uint32 src/dst; imm0/imm1 float32; cumulative result per "
       "element", E, "test_tensor_scalar_cumulative_args"),
    _r("dropout.current", N, "nki 0.3", f"{SH} dropout; SH nki/api/nki/language/__init__.py "
       "rand, random_seed, dropout",
       "nisa.dropout zeroes each element with probability prob (scalar or (P, 1)), not "
       "rescaled; dst dtype = data dtype; integer data needs a float32 prob; nl.rand is uniform "
       "[0, 1); nl.random_seed takes a [1, 1] SBUF/PSUM 32-bit tensor and repeats the sequence; "
       "nl.dropout is nisa.dropout into a new tile (classic nl.dropout likewise, S25)", E,
       "test_current_random_numbers_and_dropout",
       "the draws come from a seeded NumPy generator (nkigen/sim/rngstate.py), not the device's "
       "published-nowhere sequence: only the distribution is modelled"),
    _r("dropout.integer", C, "SDK 2.25", f"{S25} dropout",
       "integer data needs a float32 prob and keeps its dtype", E,
       "test_classic_dropout_integer_rules"),
    _r("nc_stream_shuffle.start", N, "nki 0.3", f"{SH} nc_stream_shuffle",
       "with 96/128 active partitions src/dst start at 0, with 64 at 0/64, with 32 at "
       "0/32/64/96", E, "test_stream_shuffle_start_partition"),
    _r("activation.reduce_res_shape", B, V, f"{SH} activation reduce_res",
       "reduce_res is a (P, 1) tile", E, "test_activation_reduce_res_shape"),
    _r("activation.op_unary", B, V, f"{SH} activation op",
       "op is an activation function (unary), not an ALU binary operator", E,
       "test_activation_op_unary"),
    _r("tensor_copy_predicated.psum", B, V, f"{SH} tensor_copy_predicated",
       "src and predicate are not both in PSUM", E, "test_copy_predicated_not_both_psum"),
    _r("dma_compute.args", N, "nki 0.3", f"{SH} dma_compute",
       "1 to 16 sources; scales (if any) all 1.0", E, "test_dma_compute_sources_and_scales"),
    _r("tensor_reduce.dst_shape", B, V, f"{SH} tensor_reduce Tile size",
       "dst elements per partition are consistent with the reduced axes", E,
       "test_tensor_reduce_dst_shape"),
    _r("tensor_copy.shapes", B, V, f"{SH} tensor_copy",
       "dst has the partitions and elements per partition of src", E, "test_tensor_copy_shapes"),
    _r("bn_aggr.math", B, V, f"{SH} bn_stats / bn_aggr",
       "bn_aggr of bn_stats chunks gives the mean and the (biased) variance", K,
       "test_bn_aggr_computes_mean_var"),
    _r("reciprocal.vector", B, V, f"{SH} reciprocal", "VectorE reciprocal computes 1/x in "
       "float32", K, "test_reciprocal_vector_engine"),
    _r("scalar_tensor_tensor.psum", B, V, f"{SH} scalar_tensor_tensor Memory types",
       "data and operand1 are not both in PSUM", E, "test_scalar_tensor_tensor_memory_and_shape"),
    _r("dma_transpose.dst_sbuf", N, "nki 0.3", f"{SH} dma_transpose dst", "dst is an SBUF tile",
       E, "test_dma_transpose_dst_sbuf"),
    _r("nc_matmul.partition_match", B, V, f"{SH} nc_matmul Tile size",
       "stationary and moving have the same partition (contraction) size", E,
       "test_matmul_partition_dims_match"),
    # ---- classic mask= of the transposes and 8-wide searches -------------------------------
    _r("mask.dma_transpose", C, "SDK 2.25", f"{S25_T} NKI API Masking; {S25} dma_transpose mask",
       "mask= names lanes of the source tile: only that box is read (source lanes past an HBM "
       "tensor's end are never touched) and written transposed; other result lanes undefined",
       K, "test_classic_dma_transpose_mask_reads_box_of_source",
       "undefined lanes are NaN in the simulator (test_classic_dma_transpose_mask_lanes_"
       "outside_undefined)"),
    _r("mask.nc_transpose", C, "SDK 2.25", f"{S25_T} NKI API Masking; {S25} nc_transpose mask",
       "mask= names lanes of data [P, F]: the kept box is transposed into the result, other "
       "result lanes undefined", K, "test_classic_nc_transpose_mask_transposes_box",
       "a 2-D data tile only (the masked form with several free dims is refused as unsupported)"),
    _r("mask.max8", C, "SDK 2.25", f"{S25_T} NKI API Masking; {S25} max8 mask",
       "mask= names lanes of src: the 8 largest of the kept free lanes of each kept partition; "
       "the kept lanes must still number 8..16384", K,
       "test_classic_max8_mask_searches_kept_lanes"),
    _r("mask.find_index8", C, "SDK 2.25", f"{S25} nc_find_index8 'a mask is applied only to "
       "the data tensor'", "mask= restricts the data searched (indices count from the first "
       "kept lane); vals of the kept partitions", K,
       "test_classic_find_index8_mask_applies_to_data"),
    _r("local_gather", B, V, f"{SH} local_gather; {S25} local_gather; S25 general/nki/test/"
       "test_nki_isa_local_gather.py (NumPy semantics)",
       "GpSimd local_gather: per 16-partition group the uint16 index slice (partition dim "
       "first), num_valid_indices of them (<= the slice's count, <= 4096), num_elem_per_idx in "
       "{1, 2, 4, 8, 16, 32} contiguous elements per index in every partition of the group; P a "
       "multiple of 16; no cast (dst dtype = src dtype); cost 150 + valid * e / C", E,
       "test_local_gather",
       "an out-of-bounds index (undefined on hardware) is a located error; the classic form "
       "returns (P, valid, e), the shape the SDK test stores"),
    # ---- not modelled -------------------------------------------------------------------------
    _r("indirection_v4", N, "nki 0.3, NC-v4", f"{SH} tensor indirection (.indirect())",
       "tensor indirection and its base-partition rules (NeuronCore-v4)", U,
       "test_v4_only_features_rejected",
       "the simulator models trn1/trn2 (NC-v2/v3) only; v4-only instructions are rejected"),
    _r("tensor_tensor.int32_gpsimd", N, "nki 0.3", f"{SH} tensor_tensor int32/uint32",
       "all-int32/uint32 tensor_tensor defaults to GpSimd with exact integer math; with a tile "
       "in PSUM (or engine=vector) it runs on VectorE in float32", K,
       "test_int32_tensor_tensor_exact",
       "classic: only the language-level nl.add / nl.multiply of 32-bit integers go to GpSimd "
       "(S25 operator table)"),
    # ---- rules added for survivors of benchmarks/kernel_mutants.py ----------------------------
    Rule("isa.tensor_tensor.gpsimd_engine_column", C, "SDK 2.25",
         f"{S25_T} tbl-aluop 'Supported Engine'",
         "classic tensor_tensor on GpSimd only with add, multiply or power (the table lists "
         "GpSIMD for add, multiply, rsqrt, power); the current API has no engine column and "
         "its tensor_tensor takes engine=gpsimd for any operator", E,
         M + "test_classic_tensor_tensor_gpsimd_engine_column"),
    Rule("isa.nc_matmul.classic_sbuf_operands", C, "SDK 2.25", f"{S25} nc_matmul",
         "classic nisa.nc_matmul: stationary and moving must be SBUF tiles (a PSUM operand is "
         "an error; the language-level nl.matmul may still be given one)", E,
         M + "test_classic_nc_matmul_operands_in_sbuf"),
    Rule("isa.act.classic_table", C, "SDK 2.25", f"{S25_T} tbl-act-func",
         "classic activation (ISA and nl.* level) without the current-only functions "
         "gelu_apprx_sigmoid and gelu_apprx_sigmoid_dx", E,
         M + "test_classic_activation_table_has_no_current_only_functions"),
    Rule("isa.alu.abs_max_v4", B, "nki 0.3+ / SDK 2.25",
         "SH nki/api/nki/language/__init__.py abs_max, abs_min; " + f"{S25_T} tbl-aluop",
         "abs_max / abs_min (the signed input of larger / smaller magnitude) run only on "
         "NeuronCore-v4 (trn3) and newer: an error on trn1/trn2; the classic table lacks them",
         E, M + "test_abs_max_abs_min_rules"),
    Rule("isa.int_dst_range", B, V, f"{SH_T} tbl-dtype; {S25_T} tbl-dtype",
         "an engine result (memset value included) written to an integer tile is finite and "
         "inside the dtype's range after rounding: no conversion of NaN/inf/out-of-range values "
         "to integer dtypes is documented", E, M + "test_int8_write_range_boundary",
         "NaN usually comes from reading a never-written tile (new tiles are NaN-filled); "
         "iota's int32 pattern values into a narrower integer dst too (mutants17: 0..511 into "
         "int8 wrapped to -128.. silently; tests/test_sim_mutants17.py::test_iota_int8_dst_range) "
         "and GpSimd's exact int32 add/multiply results (2**30 + 2**30 wrapped to -2**31; "
         "test_int32_exact_add_overflow)"),
    Rule("isa.reduce_regs.reset_first", B, V,
         f"{SH} activation pseudo-code and reduce_cmd, tensor_scalar_reduce, select_reduce, "
         f"range_select, tensor_scalar_cumulative; {S25} activation, range_select",
         "the engines' accumulation registers (ScalarE reduce_regs, the VectorE accumulators) "
         "change only by reset / reduce commands and have no documented value before the first "
         "reset: reading them (reduce_res, or a cumulative continuing with reduce_cmd=reduce) "
         "on partitions no instruction reset is an error", E,
         "tests/test_sim_mutants17.py::test_activation_registers_read_before_any_reset",
         "mutants17 (rcmd-reduce, rcmd-idle): a first accumulation with reduce_cmd=reduce or "
         "idle read registers that silently started at 0 (or the reduce op's identity); "
         "tracked per partition, per SPMD program"),
    Rule("isa.operand_types", B, V, f"{SH} signatures (dst/data/src: NkiTensor; scalars where "
         f"annotated float | NkiTensor); {S25} parameter lists (data/stationary/moving: tile)",
         "an instruction's tensor operands are tiles (or views of one) and its scalar operands "
         "numbers: a string, None, a list or an array there is a located error naming the "
         "operand; grid axes (program_id / num_programs) and nl.shared_identity_matrix's n are "
         "trace-time integers", E,
         "tests/test_sim_mutants17.py::test_malformed_operand_is_a_located_error",
         "mutants17 crash probes (benchmarks: 1460 malformed calls over both APIs): 15 call "
         "sites raised AttributeError / ValueError / TypeError inside the simulator before"),
    Rule("isa.classic_no_dst", C, "SDK 2.25", f"{S25} signatures (no dst but dma_copy, "
         "tensor_copy_dynamic_dst, tensor_copy_predicated, nc_stream_shuffle; each ends in "
         f"**kwargs); {SH} (dst-first calls, nki 0.3)",
         "classic ISA calls return their result: dst= (the current API's form) on a classic call "
         "whose S25 signature has no dst is an error, not a keyword swallowed by **kwargs", E,
         "tests/test_sim_mutants17.py::test_classic_isa_call_with_current_dst_keyword",
         "mutants17 (cur-form): nisa.tensor_tensor(dst=t, ...) in a neuronxcc.nki kernel left t "
         "unwritten silently; other unknown classic keywords stay accepted (**kwargs)"),
    Rule("isa.dma_copy.keywords", N, "nki 0.3", f"{SH} dma_copy signature",
         "dma_copy takes dst, src, priority, oob_mode, dge_mode, engine, name (dtype= accepted "
         "as on the other dst-first calls; mask=None accepted as on nl.* calls): another keyword "
         "is an error", E, "tests/test_sim_mutants17.py::test_current_dma_copy_unknown_keyword",
         "mutants17: dma_copy(**kw) ignored any keyword silently (e.g. mask=True)"),
    Rule("isa.signature", N, "nki 0.3", f"{SH} signatures (dst-first, no mask=)",
         "a current ISA call binds to its documented signature: the classic returned form "
         "(no dst) or a classic-only keyword is a located error naming the signature", E,
         "tests/test_sim_mutants17.py::test_current_isa_call_in_classic_returned_form",
         "mutants17 (classic-form): Python's TypeError at the kernel line before; dtype= stays "
         "accepted on dst-first calls (public tutorials pass it; nkigen/sim/nki/isa.py "
         "_cast_to)"),
)
