"""Conformance rows: nki.language, the programming model and the nki.errors catalogue.

See the package docstring for the row format. Tests: tests/test_conformance_lang.py (T below).
"""

from __future__ import annotations

from nkigen.sim.conformance import Api, Rule, Status

__all__ = ["RULES", "Api", "Rule", "Status"]

T = "tests/test_conformance_lang.py::"
C, N, B = Api.CLASSIC, Api.NKI, Api.BOTH
E, V, U = Status.ENFORCED, Status.COMPUTED, Status.UNMODELLED
S25 = "SDK 2.25"
NKI3 = "nki 0.3"
ERR = "S25 general/nki/api/nki.errors.rst "
MIG = "SH nki/migration/index.rst "
PM = "S25 general/nki/programming_model.rst "
ARCH = ("S25 general/nki/arch/trainium_inferentia2_arch.rst; SH nki/guides/architecture/"
        "trainium_inferentia2_arch.rst ")
CLANG = "S25 general/nki/api/nki/language/__init__.py "
NLANG = "SH nki/api/nki/language/__init__.py "
ALLOC = "S25 general/nki/api/nki/compiler/"
ALLOC_ONLY = ("not modelled: the simulator accepts it in directly allocated kernels; the test "
              "shows the allocation rules that are modelled")


MASK = "S25 general/nki/api/nki.api.shared.rst NKI API Masking "
FORMS = "tests/test_classic_forms.py::"
PROFILE = ("a warning in the user profile, an error in the generated profile when switched on "
           "(nkigen/sim/classic/forms.py GENERATED_ERRORS)")


def _r(id_: str, api: Api, version: str, source: str, rule: str, status: Status, test: str,
       note: str = "") -> Rule:
    return Rule(id_, api, version, source, rule, status, T + test, note)


RULES: tuple[Rule, ...] = (
    # ---- nki.errors catalogue (classic, SDK 2.25), entry by entry -------------------------------
    _r("errors.err_1d_arange_not_supported", C, S25, ERR + "err_1d_arange_not_supported",
       "a tile index needs a placed (2-D) nl.arange", E, "test_classic_1d_arange_rejected"),
    _r("errors.err_ambiguous_tensor_truth_value", B, S25, ERR + "err_ambiguous_tensor_truth_value",
       "a tensor has no truth value (not/and/or/if on tiles)", E,
       "test_tensor_truth_value_rejected"),
    _r("errors.err_annotation_shape_mismatch", C, S25, ERR + "err_annotation_shape_mismatch",
       "`x: nt.tensor[shape] = value` checks the shape", U, "test_tensor_truth_value_rejected",
       "Python does not evaluate annotations of local variables, so the kernel cannot see them"),
    _r("errors.err_bias_tensor_must_be_specified_in_allocation", C, S25,
       ERR + "err_bias_tensor_must_be_specified_in_allocation",
       "activation (nisa.activation / activation_reduce) in a directly allocated kernel "
       "passes bias; nl.exp & co (a biasless activation) are refused there", E,
       "test_classic_allocated_kernel_activation_bias_and_transpose",
       "a kernel is allocated once it has made a direct allocation (ncc.sbuf/psum alloc or "
       "mod_alloc); the simulator runs eagerly, so calls before the first one are not checked"),
    _r("errors.err_cannot_assign_to_index", C, S25, ERR + "err_cannot_assign_to_index",
       "nl.arange / nl.mgrid indices are not assignable (nisa.iota first)", E,
       "test_classic_index_tensor_not_assignable"),
    _r("errors.err_cannot_update_immutable_parameter", C, S25,
       ERR + "err_cannot_update_immutable_parameter",
       "parameters are immutable unless annotated nt.mutable_tensor", E,
       "test_classic_immutable_parameter",
       "kernels returning nothing use the output-argument convention and are exempt"),
    _r("errors.err_control_flow_condition_depending_on_arange", C, S25,
       ERR + "err_control_flow_condition_depending_on_arange",
       "no if/while on nl.arange / nl.mgrid values (use mask=)", E,
       "test_classic_control_flow_on_arange_rejected"),
    _r("errors.err_copy_dynamic_indirect_indices_not_natively_supported", C, S25,
       ERR + "err_copy_dynamic_indirect_indices_not_natively_supported",
       "t[...] = x[tile-valued index] needs tensor_copy_dynamic_src", U,
       "test_classic_indirect_indexing_unsupported",
       "indirect (tile-valued) on-chip indexing is not simulated; it raises an unsupported error"),
    _r("errors.err_dynamic_control_flow_not_supported", B, S25,
       ERR + "err_dynamic_control_flow_not_supported", "no Python control flow on tensor values",
       E, "test_tensor_truth_value_rejected"),
    _r("errors.trace_time_ints", B, S25, ERR + "err_dynamic_control_flow_not_supported; " + CLANG
       + "affine_range / arange / mgrid; " + NLANG + "affine_range (an alias of range())",
       "loop bounds, tensor shapes, slice bounds, broadcast_to shapes, nl.arange lengths, "
       "reshape dimensions, iota / affine_select pattern entries, offsets and channel "
       "multipliers, view-primitive dims and sizes, and classic memset shapes are integers "
       "known at trace time (a tile, None, a string or a fraction is an error); nl.mgrid has "
       "one axis per slice", E,
       "test_loop_bounds_and_sizes_are_trace_time_integers",
       "each raised a Python exception inside the simulator before, and range(2.5) ran twice "
       "(mutants15 crash probes)"),
    _r("errors.err_exceed_max_supported_dimension", C, S25,
       ERR + "err_exceed_max_supported_dimension", "nl.transpose takes rank-2 tiles", E,
       "test_transpose_rank_and_size_limits"),
    _r("errors.err_failed_to_infer_tile_from_local_tensor", C, S25,
       ERR + "err_failed_to_infer_tile_from_local_tensor",
       "a block tensor is indexed down to a (partition-first) tile before compute", E,
       "test_classic_block_tensor_must_be_indexed_to_a_tile"),
    _r("errors.err_hbm_tensor_with_init_value_not_supported", B, S25,
       ERR + "err_hbm_tensor_with_init_value_not_supported",
       "nl.zeros/ones/full cannot create HBM tensors", E, "test_zeros_in_hbm_rejected"),
    _r("errors.err_indirect_indices_free_dim", C, S25, ERR + "err_indirect_indices_free_dim",
       "dynamic load/store indices only on the partition/block dim", E,
       "test_classic_indirect_index_on_free_dim_rejected",
       "the index tile is an on-chip [P, 1] tile standing for the partition axis of the access; "
       "the known issue 'nl.mgrid won't work' for indirect indexing (S25 nki_known_issues.rst) "
       "is not modelled: mgrid and arange indices are the same expressions here"),
    _r("errors.err_leading_dimension_of_tensor_must_be_partition", C, S25,
       ERR + "err_leading_dimension_of_tensor_must_be_partition",
       "the partition dim of SBUF/PSUM tensors leads (block dims deprecated)", U,
       "test_classic_block_tensor_must_be_indexed_to_a_tile",
       "docs conflict: the SDK 2.25 examples, tutorials and nki-samples reference kernels still "
       "declare (B, par_dim(P), F) tensors, so block dims are accepted"),
    _r("errors.err_local_variable_used_out_of_scope", C, S25,
       ERR + "err_local_variable_used_out_of_scope",
       "a tensor created in a loop body is not used after the loop", E,
       "test_classic_tensor_used_out_of_loop_scope",
       "nl.*_range loops only; if/else blocks and Python range loops are not tracked"),
    _r("errors.err_mutable_parameter_not_returned", C, S25,
       ERR + "err_mutable_parameter_not_returned", "a written mutable parameter is returned", E,
       "test_classic_mutable_parameter_must_be_returned"),
    _r("errors.err_nested_kernel_with_spmd_grid", B, S25, ERR + "err_nested_kernel_with_spmd_grid",
       "a kernel with an SPMD grid is not called from another kernel", E,
       "test_gridded_kernel_inside_kernel_rejected"),
    _r("errors.err_nki_api_outside_of_nki_kernel", B, S25,
       ERR + "err_nki_api_outside_of_nki_kernel", "NKI APIs are called inside kernels only", E,
       "test_api_outside_kernel_rejected"),
    _r("errors.err_num_partition_exceed_arch_limit", B, S25,
       ERR + "err_num_partition_exceed_arch_limit", "at most 128 partitions", E,
       "test_partition_dim_limit_tc1"),
    _r("errors.err_num_partition_mismatch", B, S25, ERR + "err_num_partition_mismatch",
       "operands of an instruction have equal partition counts", E,
       "test_num_partition_mismatch_rejected"),
    _r("errors.err_shared_hbm_must_in_kernel_level", C, S25,
       ERR + "err_shared_hbm_must_in_kernel_level",
       "shared_hbm tensors are created at the kernel's top level", E,
       "test_classic_shared_hbm_only_at_top_level",
       "loops and helper functions are checked; an `if` is not (trace-time ifs on Python "
       "values are legal: the nki-samples flash_fwd creates an output under one)"),
    _r("errors.err_size_of_dimension_exceed_arch_limit", B, S25,
       ERR + "err_size_of_dimension_exceed_arch_limit",
       "nl.transpose: both dims at most 128", E, "test_transpose_rank_and_size_limits"),
    _r("errors.err_store_dst_shape_smaller_than_other_shape", B, S25,
       ERR + "err_store_dst_shape_smaller_than_other_shape",
       "an assignment destination is not smaller than the value (only size-1 dims broadcast)",
       E, "test_assignment_destination_not_smaller"),
    _r("errors.err_tensor_access_out_of_bound", B, S25, ERR + "err_tensor_access_out_of_bound",
       "indices stay in bounds (masked-out lanes excepted)", E,
       "test_tensor_access_out_of_bound_rejected"),
    _r("errors.err_tensor_creation_on_scratchpad_with_init_value_not_supported", C, S25,
       ERR + "err_tensor_creation_on_scratchpad_with_init_value_not_supported",
       "directly allocated tensors are not created with an init value", E,
       "test_classic_direct_allocation_rules"),
    _r("errors.err_tensor_output_not_written_to", C, S25, ERR + "err_tensor_output_not_written_to",
       "a kernel without return values writes an output parameter", E,
       "test_classic_output_parameter_never_written"),
    _r("errors.err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel", C, S25,
       ERR + "err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel",
       "no TensorE nc_transpose (engine unset or tensor) / implicit nl.matmul transpose "
       "(transpose_x=False) in allocated kernels", E,
       "test_classic_allocated_kernel_activation_bias_and_transpose",
       "a kernel is allocated once it has made a direct allocation (ncc.sbuf/psum alloc or "
       "mod_alloc); the simulator runs eagerly, so calls before the first one are not checked"),
    _r("errors.err_unexpected_output_dependencies", C, S25,
       ERR + "err_unexpected_output_dependencies",
       "affine_range iterations do not write the same location", E,
       "test_classic_affine_same_location_written_rejected"),
    _r("errors.err_unsupported_memory", B, S25, ERR + "err_unsupported_memory",
       "operands are in the memory the API requires (nl.load from HBM, compute on chip)", E,
       "test_unsupported_memory_rejected"),
    _r("errors.err_unsupported_mixing_basic_advanced_tensor_indexing", C, S25,
       ERR + "err_unsupported_mixing_basic_advanced_tensor_indexing",
       "slices and nl.arange indices are not mixed in one index", E,
       "test_classic_mixing_basic_and_advanced_indexing_rejected"),
    _r("errors.err_while_loop_requires_unconditional_entry", C, S25,
       ERR + "err_while_loop_requires_unconditional_entry",
       "dynamic while loops are do-while", U, "test_tensor_truth_value_rejected",
       "dynamic (register) control flow is not simulated; a tensor condition raises"),
    # ---- programming model ----------------------------------------------------------------------
    _r("pm.tc1_partitions", B, S25, PM + "Tile size considerations [TC#1]",
       "tile partition dim <= nl.tile_size.pmax (128), checked at allocation", E,
       "test_partition_dim_limit_tc1"),
    _r("pm.tc2_psum_free", C, S25, PM + "Tile size considerations [TC#2]",
       "a PSUM tile's free size <= psum_fmax (512 elements), checked at allocation", E,
       "test_classic_psum_tile_free_size_tc2"),
    _r("pm.psum_multi_bank", N, "nki 0.4", "SH nki/api/nki.language.tile_size.rst psum_fmax",
       "psum_fmax is not a per-tile free-size limit: PSUM tensors may span banks", V,
       "test_current_psum_tensor_may_span_banks",
       "instruction access to one bank is checked by the isa rows"),
    _r("pm.tc3_matmul", B, S25, PM + "Tile size considerations [TC#3]",
       "matmul stationary free <= 128, moving free <= 512", E, "test_matmul_tile_limits_tc3"),
    _r("pm.onchip_rank", B, S25, PM + "Tile indexing (partition dim first)",
       "on-chip tensors have a partition dim and at least one free dim", E,
       "test_on_chip_rank_at_least_two"),
    _r("pm.start_partition", B, S25 + ", " + NKI3, ARCH + "data streaming",
       "an engine access of n partitions starts at 0 (n > 64), 0/64 (n > 32), else a multiple "
       "of 32", E, "test_start_partition_rule"),
    _r("pm.start_partition_dma", B, S25 + ", " + NKI3, ARCH + "data streaming",
       "the start-partition rule is an engine (not DMA) rule", V,
       "test_start_partition_rule_not_for_dma"),
    Rule("pm.sbuf_operands_coresident", B, S25 + ", " + NKI3,
         "SH nki/guides/architecture/trainium_inferentia2_arch.rst (SBUF: 192 KiB per "
         "partition on NeuronCore-v2); SH nki/guides/architecture/trainium2_arch.rst (224 KiB "
         "on NeuronCore-v3)",
         "the SBUF regions one instruction reads and writes fit the partition together (a "
         "spill cannot free an operand of the running instruction)", E,
         "tests/test_review12_forms.py::test_operands_of_one_instruction_must_fit_sbuf_at_"
         "once", "checked once live tiles have spilled (sim/rules.py _coresident); generated "
         "scans count their rows and a [P, 1] initial tile the same way and scan longer rows "
         "in chunks (codegen/scan.py, codegen/rows.py scan_chunks; review 12 R12-6)"),
    _r("pm.no_partition_stride", B, S25, ARCH + "data streaming",
       "no striding on the partition dim", E, "test_partition_dim_striding_rejected"),
    # ---- language: creation, buffers, tile_size ------------------------------------------------
    _r("lang.buffer_strings", N, NKI3, MIG + "String buffer names no longer supported",
       "buffer= takes nl.sbuf/... objects, not strings", E,
       "test_current_string_buffers_rejected"),
    _r("lang.comparison_dtype", N, NKI3, NLANG + "equal, not_equal, less, less_equal, greater, "
       "greater_equal, logical_not (dtype)",
       "a comparison (and logical_not) result defaults to the input tile's dtype (1 / 0; two "
       "tiles: the promoted dtype); dtype=nl.uint8 gives a boolean-like tile", V,
       "test_comparison_result_dtype_per_api",
       "classic comparisons default to dtype=bool (uint8) by signature (S25); logical_and/or/xor "
       "state no default in SH and stay uint8"),
    _r("lang.broadcast_to_dtype", N, NKI3, NLANG + "broadcast_to (dtype)",
       "broadcast_to(x, shape, dtype=) with a dtype other than x's returns a cast copy", V,
       "test_current_broadcast_to_dtype_and_identity_dst",
       "classic broadcast_to(src, *, shape) has no dtype (S25)"),
    _r("lang.identity_dst", N, NKI3, NLANG + "shared_identity_matrix (dst)",
       "shared_identity_matrix(n, dtype, dst=) writes the identity into an SBUF dst and returns "
       "it", E, "test_current_broadcast_to_dtype_and_identity_dst"),
    _r("lang.mean_int_dtype", B, "nki 0.3 / SDK 2.25", NLANG + "mean; " + CLANG + "mean",
       "nl.mean of an integer tile returns float32 in the classic API and the input's dtype in "
       "the current one (float32 intermediates in both)", V,
       "test_mean_of_integers_dtype_per_api"),
    _r("lang.classic_expand_dims", C, S25, CLANG + "expand_dims",
       "nl.expand_dims adds axes only after the last index of the tile", E,
       "test_classic_expand_dims_and_gather_flattened_limits",
       "the tensor method .expand_dims(axis) states no limit (S25 general/nki/api/nki/"
       "__init__.py tensor.expand_dims) and is used at inner positions by nki-samples "
       "helper_kernels.py"),
    _r("lang.classic_gather_flattened", C, S25, CLANG + "gather_flattened",
       "gather_flattened takes uint32 indices and 2- to 4-D data and indices", E,
       "test_classic_expand_dims_and_gather_flattened_limits",
       "an out-of-bounds index is a located error (the doc: garbage values)"),
    _r("lang.classic_atomic_rmw", C, S25, CLANG + "atomic_rmw",
       "nl.atomic_rmw: op is np.add only and dst uses indirect (index tile) indexing; the add "
       "accumulates into the picked HBM rows", E,
       "test_classic_atomic_rmw_add_on_indirect_dst_only"),
    _r("lang.classic_loop_reduce", C, S25, CLANG + "loop_reduce",
       "acc[...] = nl.loop_reduce(x, op, loop_indices, mask=) accumulates x into acc with op "
       "(a tensor_tensor accumulate, legal across affine iterations); op is a legal reduction "
       "operator", V, "test_classic_loop_reduce_accumulates_into_assigned_tile",
       "only the assignment form public kernels use is modelled; the doc's rebinding form "
       "(b = nl.loop_reduce(a, ...), the destination unnamed) is refused where its result is "
       "used"),
    _r("lang.ndarray_default_sbuf", N, NKI3, MIG + "Parameter default value updates",
       "nl.ndarray's buffer defaults to nl.sbuf", V,
       "test_current_ndarray_buffer_defaults_to_sbuf"),
    _r("lang.tile_size_classic", C, S25, CLANG + "class tile_size",
       "tile_size has pmax, psum_fmax, gemm_*_fmax, bn_stats_fmax, *_min_align only", V,
       "test_classic_tile_size_constants"),
    _r("lang.tile_size_current", N, "nki 0.4", "SH nki/api/nki.language.tile_size.rst",
       "tile_size adds psum_bank_fmax(_bytes), psum_num_banks, sbuf_fmax(_bytes), "
       "sbuf_size_bytes (total), total_available_sbuf_size (per partition)", V,
       "test_current_tile_size_constants",
       "psum_num_banks is 8 (7 only with NKI_DMA_TRANSPOSE_AS_PE_TRANSPOSE, not modelled)"),
    # ---- outputs and parameters ---------------------------------------------------------------
    _r("lang.outputs_shared_hbm", N, NKI3, MIG + "Output tensors must use nl.shared_hbm",
       "returned tensors are in nl.shared_hbm", E, "test_current_outputs_must_be_shared_hbm"),
    _r("lang.outputs_hbm_classic", C, S25, CLANG + "hbm / shared_hbm",
       "returned tensors may be in nl.hbm or nl.shared_hbm", V, "test_classic_outputs_may_be_hbm"),
    _r("lang.inputs_writable", N, NKI3, MIG + "NKI CPU Simulator example",
       "no immutable-parameter rule: kernels may write their inputs", V,
       "test_current_kernels_may_write_inputs"),
    _r("lang.shared_hbm_top_level_ok", C, S25, ERR + "err_shared_hbm_must_in_kernel_level",
       "shared_hbm created at the top level is accepted", V,
       "test_classic_shared_hbm_at_top_level_ok"),
    # ---- nki 0.3 argument rules --------------------------------------------------------------
    _r("nki03.platform_target", N, NKI3, MIG + "nki.jit(platform_target=...)",
       "nki.jit(platform_target=) raises; the target comes from NEURON_PLATFORM_TARGET_OVERRIDE",
       E, "test_current_platform_target_is_an_error"),
    _r("nki03.mode_ignored", N, NKI3, MIG + "nki.jit(mode=...)", "nki.jit(mode=) is ignored", V,
       "test_current_mode_is_ignored"),
    _r("nki03.no_list_args", N, NKI3, MIG + "Replace list kernel arguments with tuples",
       "kernel arguments are not lists", E, "test_current_list_arguments_rejected"),
    _r("nki03.no_kwonly", N, NKI3, MIG + "Remove keyword-only argument separator",
       "kernel signatures have no '*' separator", E,
       "test_current_keyword_only_separator_rejected"),
    Rule("nki.no_reorder", N, "nki 0.5+ (SH)", NLANG + "no_reorder; SH "
         "nki/guides/how-to-scheduling-apis.rst",
         "with nl.no_reorder(): keeps program order; kernel.with_schedule([(name, name | "
         "[names])]) adds dependency edges", V,
         "tests/test_sim_public9.py::test_no_reorder_and_with_schedule_run_in_program_order",
         "the simulator executes in program order, so both run unchanged; the with_schedule "
         "argument's form is checked, its names are not"),
    Rule("nki.view_primitives", N, "nki 0.5+ (SH)", NLANG + "NkiTensor permute / broadcast / "
         "expand_dim / squeeze_dim / reshape_dim / flatten_dims / rearrange / slice / select / "
         "vector_select",
         "view primitives return views of the same storage under their documented "
         "constraints (on-chip: the partition dim stays first and is not split, broadcast, "
         "squeezed or selected; broadcast/squeeze need size 1; reshape_dim products match; "
         "flatten_dims needs contiguous dims; 0 <= start < end <= size, step >= 1; "
         "0 <= index < size)", E,
         "tests/test_sim_public9.py::test_view_primitive_constraints",
         "a dynamic select reads its (1, 1) index tile when the view is made; vector_select "
         "gives the vector_offset access pattern of a whole HBM tensor (nkigen.sim.nki.views)"),
    Rule("nki.softmax_rms_norm", N, "nki 0.3", NLANG + "softmax, rms_norm",
         "nl.softmax and nl.rms_norm reduce along free axes only (x / RMS(x) * w, RMS = "
         "sqrt(sum(x * x) / n + epsilon))", E,
         "tests/test_sim_public9.py::test_softmax_and_rms_norm",
         "computed in fp32 from the simulator's nl reductions and element-wise ops; the "
         "hardware lowering (instruction count, rounding of intermediates) is not documented"),
    Rule("nki.ap_on_view", N, "SDK 2.31+ (SH)",
         NLANG + "NkiTensor.ap offset; SH nki/deep-dives/nki-aps.rst 'Composition and .ap on a "
         "view'",
         ".ap() may be called on a view (slice, reshape): the pattern addresses the tensor's "
         "storage and the offset counts from the view's start; the pattern stays within the "
         "tensor", V, "tests/test_sim_public9.py::test_ap_on_a_view_starts_at_the_view",
         "nki-aps.rst of SDK 2.27-2.30 refused it ('Restriction on Nested Indexing'); removed "
         "in 2.31. The same page says the pattern ignores the view's offset while the "
         "NkiTensor.ap docstring adds it; the docstring (more specific) is followed. Classic "
         "kernels keep the refusal (S25 has no .ap)"),
    _r("nki03.no_is", N, NKI3, MIG + "Replace is / is not with == / !=",
       "no `is` / `is not` in kernels", E, "test_current_identity_comparisons_rejected",
       "checked in the kernel function's own source (not in helpers it calls). Kept although "
       "nki-library HEAD kernels test `x is None` in their jit functions (attention_cte, "
       "depthwise_conv1d, indexed_flatten): the migration guide and the release notes refuse "
       "it and no later document allows it (docs/public-kernels.md)"),
    _r("nki03.mask_removed", N, "nki 0.2", MIG + "Deprecation of masking",
       "no mask= and no nl.arange in the current API", E, "test_current_mask_and_arange_removed"),
    # ---- SPMD ----------------------------------------------------------------------------------
    _r("spmd.num_programs_classic", C, S25, CLANG + "num_programs",
       "num_programs(axes=None) is the whole grid; program_ndim the grid rank", V,
       "test_num_programs_per_api"),
    _r("spmd.num_programs_current", N, NKI3, MIG + "Parameter default value updates",
       "num_programs() defaults to axes=0; program_id() to axis 0", V,
       "test_num_programs_per_api",
       "the docstring's 'not provided = whole grid' conflicts with the axes=0 default; the "
       "signature and the migration guide are followed"),
    _r("spmd.race", B, S25, ERR + "err_unexpected_output_dependencies (spmd grid)",
       "SPMD programs do not write the same location", E, "test_spmd_programs_race_rejected"),
    # ---- loops ---------------------------------------------------------------------------------
    _r("loops.affine_raw", C, S25, CLANG + "affine_range",
       "classic affine_range iterations are parallel: no read of another iteration's write", E,
       "test_classic_affine_read_after_write_rejected"),
    _r("loops.affine_war", C, S25, CLANG + "affine_range",
       "no overwrite of what another iteration read (write-after-read)", E,
       "test_classic_affine_write_after_read_detected"),
    _r("loops.affine_accumulate", C, S25, CLANG + "affine_range",
       "associative accumulation (+=) across affine iterations is allowed", V,
       "test_classic_affine_accumulation_allowed"),
    _r("loops.sequential", B, S25, CLANG + "sequential_range",
       "sequential_range carries dependencies in order", V,
       "test_classic_sequential_range_carries_dependencies"),
    _r("loops.affine_current", N, NKI3, NLANG + "affine_range",
       "the current affine_range is an alias of range(): fully unrolled, in order", V,
       "test_current_affine_range_is_unrolled_range"),
    _r("loops.python_scope", N, "nki 0.2", MIG + "loops and branching consistent with Python",
       "tensors created in a loop body remain usable after it", V,
       "test_current_tensors_outlive_loops"),
    _r("loops.dynamic", N, NKI3, NLANG + "dynamic_range / fori_loop / while_loop",
       "register-driven dynamic loops run their iterations in order; the induction variable "
       "is a VirtualRegister", V, "test_dynamic_loops_run",
       "the simulator runs eagerly, so registers hold concrete integers "
       "(nkigen/sim/nki/registers.py; isa.registers)"),
    _r("loops.static", B, S25, CLANG + "static_range", "static_range yields plain ints", V,
       "test_static_range_yields_ints"),
    Rule("loops.traced_extent", C, S25,
         CLANG + "static_range (only static_range is unrolled during tracing, unlike "
         "affine_range / sequential_range); " + CLANG + "affine_range Notes; " + MASK
         + "(the ragged last tile: a full tile under mask=)",
         "a tile extent (nl.arange length, slice length, nl.ds size, nl.ndarray dimension) "
         "may not vary with an nl.affine_range / nl.sequential_range index (the body is "
         "traced once); a start that moves with the index at a fixed size, and masks of loop "
         "indices, stay legal", E,
         "tests/test_classic_extents.py::test_an_extent_computed_from_an_affine_index_is_refused",
         "checked on the values a run reaches: a min(128, n - 128 * i) size is refused in the "
         "ragged iteration only, so a kernel run only at multiples of its tile passes "
         "(review 9 R9-5)"),
    Rule("loops.float_of_index", C, S25,
         CLANG + "static_range (only static_range is unrolled during tracing); "
         "S25 general/nki/api/nki/isa/__init__.py tensor_scalar (operand0: a compile-time "
         "constant scalar or a (P, 1) tile)",
         "float() of an nl.affine_range / nl.sequential_range index is refused: the index has "
         "no trace-time value to make a constant scalar of (review 10 R10-6)", E,
         "tests/test_review10_forms.py::test_float_of_a_traced_loop_index_is_an_error"),
    # ---- indexing ------------------------------------------------------------------------------
    _r("index.slices_not_clipped", B, S25, ERR + "err_tensor_access_out_of_bound",
       "slices are bounds-checked, never clipped", E, "test_slices_never_clipped"),
    Rule("index.masked_arange_past_end", C, S25,
         "S25 general/nki/api/nki.api.shared.rst NKI API Masking (the ragged example); "
         + ERR + "err_tensor_access_out_of_bound",
         "an nl.arange index of an HBM tensor may run past its end under a mask= that excludes "
         "those lanes: only in-mask lanes are read or written (nisa.dma_copy both ways, "
         "nisa.dma_transpose); a mask one lane wider is an out-of-bounds access", E,
         "tests/test_classic_sim.py::test_masked_arange_index_dma_touches_only_in_mask_lanes",
         "the form of the generated classic kernels' ragged tiles (codegen/classic_index.py)"),
    _r("index.ds", B, S25, CLANG + "ds", "nl.ds(start, size) is start:start+size", V,
       "test_ds_is_start_plus_size"),
    _r("index.ds_integers", B, S25, CLANG + "ds; " + NLANG + "ds",
       "nl.ds(start, size) takes trace-time integers: a tile or a fractional value is an error "
       "(a tile-held start is a dynamic offset: .ap(scalar_offset=) / an indirect index)", E,
       "test_ds_takes_trace_time_integers",
       "a tile start raised int()'s TypeError inside the simulator before (mutants15)"),
    _r("nki.ap_pattern", N, NKI3, NLANG + "NkiTensor.ap (pattern: list[list[int]], offset: "
       "int)", ".ap() takes a list of [stride, count] pairs of integers and an integer offset",
       E, "test_ap_pattern_is_stride_count_pairs",
       "a flat pair raised a TypeError inside the simulator; a three-element entry and a "
       "fractional offset were accepted (mutants15)"),
    _r("index.int_partition", N, NKI3, "SH nki/get-started/nki-language-guide.rst",
       "an integer partition index keeps a size-1 partition dim", V,
       "test_integer_partition_index_keeps_tile_rank"),
    _r("index.arange_mgrid", C, S25, PM + "Tile indexing / advanced indexing",
       "nl.arange / nl.mgrid affine expressions index tiles (partition index a column)", V,
       "test_classic_arange_mgrid_indexing"),
    _r("index.mask", C, S25, CLANG + "mask parameter",
       "mask= limits the lanes an instruction touches; masked-out indices are not checked", V,
       "test_classic_mask_limits_lanes_and_bounds"),
    _r("index.mask_skip", C, S25, "S25 general/nki/api/nki.api.shared.rst NKI API Masking "
       "(skip ineffectual instructions; affine_range indices as mask terms)",
       "a mask that keeps no lane (e.g. one of loop indices only) skips the instruction: "
       "nothing is written or accumulated and no result tile exists on chip", V,
       "test_classic_mask_of_loop_indices_skips_instruction"),
    _r("index.mask_grid", C, S25, MASK + "(comparisons of affine nl.arange expressions joined "
       "with &); " + PM + "Advanced Tensor Indexing (nl.arange indices broadcast like NumPy)",
       "the comparisons of one mask= index one lane grid: their nl.arange shapes broadcast "
       "together (an arange on the wrong axis or of another size is an error)", E,
       "test_classic_mask_comparisons_share_one_lane_grid",
       "kernel_mutants mask-axis (mutants15): a crash inside the simulator before"),
    # ---- undocumented classic forms (nkigen.sim.classic.forms): a warning in the user profile,
    # an error in the generated profile (nkigen build) once the rule is switched on ------------
    Rule("forms.mask_sequential_index", C, S25, MASK + "(comparison sides: affine expressions "
         "of nl.arange / nl.affine_range / nl.program_id)",
         "a mask comparison may not depend on an nl.sequential_range index, nor on a loop index "
         "through //, % or a product", E, FORMS + "test_sequential_index_in_a_mask_fails_a_"
         "generated_kernel", PROFILE + "; public kernels (nki-samples 7af4e4d contributed/"
         "neuron-team-kernels/attention_build_blocks.py forward_mask) use it"),
    Rule("forms.select_sequential_index", C, S25, "S25 general/nki/api/nki/isa/__init__.py "
         "affine_select (pred: an affine expression resolved at compile time) / iota; "
         "examples/sd_attention/sd_attention_nki_kernels.py (affine_range indices)",
         "affine_select's pred / iota's expr may not depend on an nl.sequential_range index, "
         "nor on a loop index through //, % or a product", E,
         FORMS + "test_sequential_index_in_a_select_predicate_fails_a_generated_kernel",
         PROFILE),
    Rule("forms.mask_matmul_lanes", C, S25, MASK + "(nc_matmul / nl.matmul: operand masking)",
         "a matmul mask= holds loop-index predicates only; lane masks are operand masks", E,
         FORMS + "test_one_arange_term_in_a_matmul_mask_is_flagged", PROFILE),
    Rule("forms.hbm_slice_past_end", C, S25, ERR + "err_tensor_access_out_of_bound; "
         "S25 general/nki/api/nki.api.shared.rst NKI API Masking (ragged example)",
         "a basic slice of an HBM tensor stays within the tensor, masked or not (the "
         "documented ragged access is an nl.arange index with mask=)", E,
         FORMS + "test_slice_one_past_the_end_is_flagged", PROFILE),
    Rule("forms.index_nonaffine_loop_index", C, S25, PM + "Tensor (an Index: an affine "
         "expression over variables of index-generating APIs); " + CLANG + "static_range",
         "a tensor index (nl.arange expression, int, slice or nl.ds bound) may not depend on an "
         "nl.affine_range / nl.sequential_range index through %, // or a product", E,
         "tests/test_review9_forms.py::test_a_non_affine_loop_index_in_an_index_fails_a_"
         "generated_kernel", PROFILE + "; public kernels use it on an SBUF block dim "
         "(nki-samples attention_fwd_performance/attention_kernels.py qk_sbuf[:, i_tile_q % 2])"),
    Rule("forms.transpose_tensor_integer", C, S25, "S25 general/nki/api/nki/isa/__init__.py "
         "nc_transpose (TensorE: a matmul with an identity) and nc_matmul (float8/bfloat16/"
         "float16/tfloat32/float32 data, float32 results)",
         "a TensorE nc_transpose takes float data only: integer data is not shown", E,
         "tests/test_review12_forms.py::test_classic_integer_tensor_transpose_fails_a_generated_"
         "kernel", PROFILE + "; generated classic kernels turn integer tiles on VectorE "
         "(codegen/transpose.py, review 12 R12-1)"),
    Rule("forms.index_flat_view", C, S25, PM + "Advanced Tensor Indexing (one start + stride "
         "* nl.arange(size) per dimension, the partition index a column); " + CLANG +
         "load / store (the partition dimension first in the index tuple)",
         "an HBM index component may not carry the partition nl.arange together with another "
         "axis's nl.arange (the flattened view x.reshape((n,))[s_p * i_p + s_f * i_f])", U,
         "tests/test_review13_forms.py::test_a_flat_hbm_view_is_warned_in_both_profiles",
         "runs with a located warning in both profiles (forms.WARN_ONLY): generated classic "
         "kernels keep it where no per-axis view with the partition index first exists "
         "(y[h, w, b] = x[b, h, w]: review 13 R13-4, open); the shuffle's three-pair patterns take "
         "per-axis views (codegen/classic_index.py _multi_axis, R13-1)"),
    Rule("index.operand_mask", C, S25, MASK + "(operand masking)",
         "nl.matmul(lhsT[pred], rhs[pred], transpose_x=True) / nc_matmul: each operand's "
         "predicate keeps a box of its [contraction, free] lanes; elsewhere t[pred] is an error",
         V, FORMS + "test_operand_masking_computes_the_kept_box"),
    # ---- direct allocation (classic) -------------------------------------------------------------
    _r("alloc.mod_alloc", C, S25, ALLOC + "sbuf.py mod_alloc; general/nki/test/"
       "test_sbuf_modulo_alloc.py", "modulo allocation places blocks; blocks sharing a physical "
       "tile alias", V, "test_classic_mod_alloc_places_and_aliases_blocks"),
    _r("alloc.psum_rules", C, S25, ALLOC + "psum.py alloc",
       "PSUM placement: bank in 0..7, start_partition = byte_addr = 0, tile <= 2 KiB", E,
       "test_classic_psum_alloc_function_and_rules"),
    _r("alloc.sbuf_rules", C, S25, ALLOC + "sbuf.py alloc",
       "SBUF placement: start-partition rule, bytes within the usable partition size", E,
       "test_classic_direct_allocation_rules"),
    _r("psum.first_matmul_overwrites", C, S25, "S25 general/nki/arch/trainium_inferentia2_arch.rst "
       "Near-memory accumulation in PSUM", "`acc += matmul` into PSUM nothing has written "
       "yet: the first nc_matmul overwrites, later ones accumulate", V,
       "test_classic_first_matmul_into_unwritten_psum_overwrites",
       "the direct-allocation reference kernels rely on it (no init values allowed there)"),
    _r("alloc.no_mixing", C, S25, ALLOC + "sbuf.py (note)",
       "automatic and direct allocation are not mixed in one kernel", U,
       "test_classic_direct_allocation_rules",
       "intermediate results are allocated automatically by the simulator, so mixing is not "
       "detected"),
    _r("alloc.trace", C, S25, ERR + "err_nested_kernel_with_spmd_grid; general/nki/test/"
       "test_sbuf_modulo_alloc.py", "nki.trace marks sub-kernels traced inline", V,
       "test_classic_trace_sub_kernel"),
)
