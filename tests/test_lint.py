"""nkigen lint: one test per rule of nkigen.lint.rules (named test_<rule id>), each pinning the
boundary: the last legal form passes, the first illegal one is reported at its node."""

from __future__ import annotations

import textwrap

import pytest

from nkigen.lint.checker import Finding, lint_source
from nkigen.lint.table import Api, Level

NKI = "import nki\nimport nki.isa as nisa\nimport nki.language as nl\nimport numpy as np\n"
CLASSIC = ("from neuronxcc import nki\nimport neuronxcc.nki.isa as nisa\n"
           "import neuronxcc.nki.language as nl\nimport numpy as np\n")


def kernel(body: str, head: str = NKI, params: str = "x") -> str:
    return f"{head}\n\n@nki.jit\ndef k({params}):\n" + textwrap.indent(
        textwrap.dedent(body).strip("\n"), "    ") + "\n"


def findings(src: str, **kw) -> list[Finding]:
    return list(lint_source(src, "k.py", **kw).findings)


def rules(src: str, **kw) -> list[str]:
    return [f.rule for f in findings(src, **kw)]


ALLOC = """\
a = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
b = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
"""


def test_clean_kernel_has_no_finding_and_detects_dialect():
    src = kernel(ALLOC + """\
nisa.dma_copy(dst=a, src=x[0:128, 0:512])
nisa.tensor_scalar(dst=b, data=a, op0=nl.multiply, operand0=2.0, op1=nl.add, operand1=1.0)
nisa.activation(dst=b, op=nl.exp, data=a, scale=-1.0)
out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
nisa.dma_copy(dst=out, src=b)
return out
""")
    res = lint_source(src, "k.py")
    assert res.api is Api.NKI and res.findings == ()
    classic = kernel("t = nl.load(x)\nreturn t\n", head=CLASSIC)
    assert lint_source(classic, "k.py").api is Api.CLASSIC
    assert lint_source("import numpy as np\nx = 1\n", "k.py").api is None


def test_findings_are_located_and_worded():
    src = kernel(ALLOC + "nisa.tensor_scalar(dst=b, data=a, op0=nl.divide, operand0=1.0)\n")
    (f,) = findings(src)
    assert (f.line, f.col) == (11, 43)          # the op0 value
    text = str(f)
    assert text.startswith("k.py:11:43: lint[op.alu]: nisa.tensor_scalar: op0=divide")
    assert "(got nl.divide)" in text and "nisa.reciprocal" in text
    assert f.as_dict()["source"].startswith("S29 nki/api/nki.api.shared.rst")


def test_aliases_resolve_in_every_import_form():
    src = ("import nki\nfrom nki import language as L\nfrom nki import isa\n"
           "from nki.language import divide as dv\n\n\n@nki.jit\ndef k(x):\n"
           "    a = L.ndarray((128, 1), dtype=L.float32)\n"
           "    isa.tensor_scalar(dst=a, data=a, op0=dv, operand0=1.0)\n"
           "    nki.isa.tensor_scalar(dst=a, data=a, op0=nki.language.divide, operand0=1.0)\n")
    assert rules(src) == ["op.alu", "op.alu"]


# --- names ------------------------------------------------------------------------------------

def test_api_unknown_name():
    assert rules(kernel("nisa.tensor_scalarr(x, x, nl.add, 1.0)\n")) == ["api.unknown-name"]
    assert rules(kernel("nisa.tensor_scalar(x, x, nl.add, 1.0)\n")) == []
    assert rules(f"{NKI}from nki.language import no_such_thing\n") == ["api.unknown-name"]
    # an annotation is not kernel code: not checked
    assert rules(kernel("pass\n", params="x: nl.no_such_type")) == []


def test_api_removed():
    src = "i = nl.arange(128)[:, None]\n"
    assert rules(kernel(src)) == ["api.removed"]
    assert rules(kernel(src, head=CLASSIC)) == []


def test_api_deprecated():
    assert rules(kernel("for i in nl.affine_range(4):\n    pass\n")) == ["api.deprecated"]
    assert rules(kernel("for i in nl.static_range(4):\n    pass\n")) == []
    assert rules(kernel("for i in range(4):\n    pass\n")) == []
    # deprecated later than the targeted version: flagged only from that version on
    st = kernel("for i in nl.static_range(4):\n    pass\n")
    assert rules(st, nki_version=(0, 5)) == []
    assert rules(st, nki_version=(0, 6)) == ["api.deprecated"]
    eng = kernel("e = nisa.gpsimd_engine\n")
    assert rules(eng, nki_version=(0, 4)) == []
    assert rules(eng, nki_version=(0, 5)) == ["api.deprecated"]
    f = findings(kernel("nisa.activation_reduce(x, nl.exp, x, nl.add, x)\n"))[0]
    assert f.rule == "api.deprecated" and f.level is Level.DEPRECATED
    assert "nisa.activation(" in f.fix


def test_api_static_range():
    src = "for i in nl.static_range(4):\n    pass\n"
    assert rules(kernel(src, head=CLASSIC)) == ["api.static-range"]
    assert rules(kernel(src.replace("static", "affine"), head=CLASSIC)) == []
    assert rules(kernel(src.replace("static", "sequential"), head=CLASSIC)) == []


def test_api_classic_import():
    src = NKI + "import neuronxcc.nki.typing as nt\n"
    assert rules(src) == ["api.classic-import"]
    assert rules(CLASSIC + "import neuronxcc.nki.typing as nt\n") == []


# --- signatures -------------------------------------------------------------------------------

def test_sig_positional():
    # nki 0.3 tensor_copy(dst, src, engine, name): four positional arguments are the limit
    assert rules(kernel("nisa.tensor_copy(x, x, nisa.engine.vector, 'n')\n")) == []
    assert rules(kernel("nisa.tensor_copy(x, x, nisa.engine.vector, 'n', 1)\n")) == \
        ["sig.positional"]


def test_sig_keyword_only():
    # classic tensor_scalar: data .. reverse1 are positional (7), dtype/mask/engine keyword-only
    ok = "nisa.tensor_scalar(x, np.add, 1.0, False, None, None, False)\n"
    bad = "nisa.tensor_scalar(x, np.add, 1.0, False, None, None, False, nl.float32)\n"
    assert rules(kernel(ok, head=CLASSIC)) == []
    assert rules(kernel(bad, head=CLASSIC)) == ["sig.keyword-only"]


def test_sig_unknown_keyword():
    assert rules(kernel("nisa.tensor_copy(dst=x, src=x, engine=nisa.engine.vector)\n")) == []
    assert rules(kernel("nisa.tensor_copy(dst=x, src=x, dtype=nl.float32)\n")) == \
        ["sig.unknown-keyword"]
    # the classic stubs take **kwargs: an extra keyword is accepted
    assert rules(kernel("y = nisa.tensor_copy(x, dtype=nl.float32, foo=1)\n",
                        head=CLASSIC)) == []


def test_sig_missing():
    assert rules(kernel("nisa.tensor_copy(dst=x)\n")) == ["sig.missing"]
    assert rules(kernel("nisa.tensor_copy(dst=x, src=x)\n")) == []
    assert rules(kernel("nisa.tensor_copy(*x)\n")) == []      # a splat: not decidable


def test_sig_duplicate():
    assert rules(kernel("nisa.tensor_copy(x, x, src=x)\n")) == ["sig.duplicate"]


def test_sig_mask():
    assert rules(kernel("nisa.tensor_copy(dst=x, src=x, mask=None)\n")) == ["sig.mask"]
    assert rules(kernel("y = nisa.tensor_copy(x, mask=None)\n", head=CLASSIC)) == []


def test_sig_isa_result():
    assert rules(kernel("y = nisa.tensor_copy(x, x)\n")) == ["sig.isa-result"]
    assert rules(kernel("r = nisa.register_alloc(0)\n")) == []     # returns a register
    assert rules(kernel("y = nisa.tensor_copy(x)\n", head=CLASSIC)) == []


def test_sig_jit_platform_target():
    src = NKI + "\n\n@nki.jit(platform_target='trn2')\ndef k(x):\n    return x\n"
    assert rules(src) == ["sig.jit-platform-target"]
    assert rules(src.replace("platform_target='trn2'", "")) == []


def test_sig_jit_mode():
    src = NKI + "\n\n@nki.jit(mode='auto')\ndef k(x):\n    return x\n"
    (f,) = findings(src)
    assert f.rule == "sig.jit-mode" and f.level is Level.DEPRECATED
    assert rules(CLASSIC + "\n\n@nki.jit(mode='simulation')\ndef k(x):\n    return x\n") == []


# --- operators and engines --------------------------------------------------------------------

def test_op_alu():
    base = ALLOC + "nisa.tensor_scalar(dst=b, data=a, op0={}, operand0=2.0)\n"
    assert rules(kernel(base.format("nl.multiply"))) == []
    assert rules(kernel(base.format("np.multiply"))) == []
    assert rules(kernel(base.format("nl.divide"))) == ["op.alu"]
    assert rules(kernel(base.format("np.divide"))) == ["op.alu"]
    assert rules(kernel("nisa.tensor_tensor(x, x, x, op=nl.divide)\n")) == ["op.alu"]


def test_op_reduce():
    base = "nisa.tensor_reduce(dst=x, op={}, data=x, axis=1)\n"
    assert rules(kernel(base.format("nl.maximum"))) == []
    assert rules(kernel(base.format("nl.max"))) == []        # documented reduce alias
    assert rules(kernel(base.format("nl.logical_xor"))) == []  # last legal (Y) row
    assert rules(kernel(base.format("nl.equal"))) == ["op.reduce"]


def test_op_activation():
    base = "nisa.activation(dst=x, op={}, data=x)\n"
    assert rules(kernel(base.format("nl.exp"))) == []
    assert rules(kernel(base.format("np.tanh"))) == []
    assert rules(kernel(base.format("nl.add"))) == ["op.activation"]


def test_op_activation_reduce():
    base = "nisa.activation(dst=x, op=nl.exp, data=x, reduce_op={}, reduce_res=x)\n"
    assert rules(kernel(base.format("nl.add"))) == []
    assert rules(kernel(base.format("nl.maximum"))) == ["op.activation-reduce"]


def test_engine_gpsimd_rsqrt():
    base = "nisa.tensor_scalar(dst=x, data=x, op0={}, operand0=0.0, engine=nisa.engine.gpsimd)\n"
    assert rules(kernel(base.format("nl.rsqrt"))) == []
    assert rules(kernel(base.format("nl.multiply"))) == ["engine.gpsimd-rsqrt"]
    cl = "y = nisa.tensor_scalar(x, np.multiply, 2.0, engine=nisa.gpsimd_engine)\n"
    assert rules(kernel(cl, head=CLASSIC)) == ["engine.gpsimd-rsqrt"]


def test_engine_scalar_ops():
    base = ("nisa.tensor_scalar(dst=x, data=x, op0={}, operand0=2.0, op1={}, operand1=1.0, "
            "engine=nisa.engine.scalar)\n")
    assert rules(kernel(base.format("nl.multiply", "nl.add"))) == []
    assert rules(kernel(base.format("nl.add", "None"))) == []
    assert rules(kernel(base.format("nl.add", "nl.add"))) == ["engine.scalar-ops"]
    assert rules(kernel(base.format("nl.subtract", "None"))) == ["engine.scalar-ops"]


def test_engine_bitvec_vector():
    base = ("nisa.tensor_scalar(dst=x, data=x, op0=nl.bitwise_and, operand0=255, "
            "engine=nisa.engine.{})\n")
    assert rules(kernel(base.format("vector"))) == []
    assert rules(kernel(base.format("scalar"))) == ["engine.bitvec-vector"]


def test_engine_alu_engine():
    base = "y = nisa.tensor_tensor(x, x, op={}, engine=nisa.gpsimd_engine)\n"
    assert rules(kernel(base.format("np.add"), head=CLASSIC)) == []
    assert rules(kernel(base.format("np.subtract"), head=CLASSIC)) == ["engine.alu-engine"]


# --- data types -------------------------------------------------------------------------------

def test_dtype_nc_transpose():
    base = ("d = nl.ndarray((128, 128), dtype=nl.{}, buffer=nl.psum)\n"
            "s = nl.ndarray((128, 128), dtype=nl.bfloat16, buffer=nl.sbuf)\n"
            "nisa.nc_transpose(dst=d[0:128, 0:128], data=s)\n")
    assert rules(kernel(base.format("bfloat16"))) == []
    assert rules(kernel(base.format("float32"))) == ["dtype.nc-transpose"]
    # a dtype not visible statically: silent
    assert rules(kernel(base.replace("dtype=nl.{}", "dtype=x.dtype"))) == []
    # a name bound twice to different dtypes: no fact, silent
    twice = base.format("float32") + "d = nl.ndarray((128, 128), dtype=nl.bfloat16)\n"
    assert rules(kernel(twice)) == []


def test_dtype_dma_transpose_size():
    base = ("s = nl.ndarray((128, 128), dtype=nl.{0}, buffer=nl.sbuf)\n"
            "d = nl.ndarray((128, 128), dtype=nl.{0}, buffer=nl.sbuf)\n"
            "nisa.dma_transpose(dst=d, src=s)\n")
    assert rules(kernel(base.format("bfloat16"))) == []     # 2 bytes
    assert rules(kernel(base.format("float32"))) == []      # 4 bytes
    assert rules(kernel(base.format("float8_e4m3"))) == ["dtype.dma-transpose-size"]
    cl = ("d = nl.ndarray((128, 128), dtype=nl.float8_e4m3, buffer=nl.sbuf)\n"
          "d[...] = nisa.dma_transpose(x)\n")
    assert rules(kernel(cl, head=CLASSIC)) == ["dtype.dma-transpose-size"]


def test_dtype_dma_transpose_match():
    base = ("s = nl.ndarray((128, 128), dtype=nl.bfloat16, buffer=nl.sbuf)\n"
            "d = nl.ndarray((128, 128), dtype=nl.{}, buffer=nl.sbuf)\n"
            "nisa.dma_transpose(dst=d, src=s)\n")
    assert rules(kernel(base.format("bfloat16"))) == []
    assert rules(kernel(base.format("float16"))) == ["dtype.dma-transpose-match"]


def test_dtype_fp32_scalar():
    ts = "nisa.tensor_scalar(dst=x, data=x, op0={}, operand0={})\n"
    assert rules(kernel(ts.format("nl.multiply", "1.0"))) == []
    assert rules(kernel(ts.format("nl.multiply", "1"))) == ["dtype.fp32-scalar"]
    assert rules(kernel(ts.format("nl.multiply", "-1"))) == ["dtype.fp32-scalar"]
    assert rules(kernel(ts.format("nl.bitwise_and", "1"))) == []   # bitvec: integers
    assert rules(kernel(ts.format("nl.abs", "0"))) == []           # unary: None or 0
    assert rules(kernel(ts.format("nl.abs", "1"))) == ["dtype.fp32-scalar"]
    act = "nisa.activation(dst=x, op=nl.copy, data=x, scale={})\n"
    assert rules(kernel(act.format("-1.0"))) == []
    (f,) = findings(kernel(act.format("-1")))
    assert f.rule == "dtype.fp32-scalar" and "scale=-1.0" in f.fix
    # the classic docs do not require it
    assert rules(kernel("y = nisa.activation(op=nl.copy, data=x, scale=-1)\n",
                        head=CLASSIC)) == []


def test_dtype_memset_value():
    base = "t = nl.ndarray((128, 1), dtype=nl.{}, buffer=nl.sbuf)\nnisa.memset(dst=t, value={})\n"
    assert rules(kernel(base.format("int32", "2"))) == []
    assert rules(kernel(base.format("float32", "2.0"))) == []
    assert rules(kernel(base.format("int32", "2.0"))) == ["dtype.memset-value"]


# --- memory -----------------------------------------------------------------------------------

def test_mem_buffer():
    base = "t = nl.ndarray((128, 1), dtype=nl.float32, buffer={})\n"
    assert rules(kernel(base.format("nl.sbuf"))) == []
    assert rules(kernel(base.format("nl.private_hbm"))) == []
    assert rules(kernel(base.format("'sbuf'"))) == ["mem.buffer"]
    assert rules(kernel(base.format("nl.float32"))) == ["mem.buffer"]


def test_mem_output_shared_hbm():
    base = "out = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.{})\nreturn out\n"
    assert rules(kernel(base.format("shared_hbm"))) == []
    assert rules(kernel(base.format("hbm"))) == ["mem.output-shared-hbm"]
    # a decorated function another one calls is a sub-kernel: its result is not an output
    sub = kernel(base.format("hbm")) + "\n\ndef top(x):\n    return k(x)\n"
    assert rules(sub) == []


def test_mem_shared_hbm_scope():
    top = "o = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.shared_hbm)\nreturn o\n"
    loop = ("for i in nl.affine_range(2):\n"
            "    o = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.shared_hbm)\n")
    cond = ("if x.shape[0] > 1:\n"
            "    o = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.shared_hbm)\n")
    assert rules(kernel(top, head=CLASSIC)) == []
    assert rules(kernel(cond, head=CLASSIC)) == []
    assert rules(kernel(loop, head=CLASSIC)) == ["mem.shared-hbm-scope"]


def test_mem_dma_from_psum():
    base = ("p = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.{})\n"
            "nisa.dma_copy(dst=x[0:128, 0:512], src=p[0:128, 0:512])\n")
    assert rules(kernel(base.format("sbuf"))) == []
    assert rules(kernel(base.format("psum"))) == ["mem.dma-from-psum"]


# --- structure --------------------------------------------------------------------------------

@pytest.mark.parametrize("stmt", ["del t", "raise ValueError('bad')", "global g",
                                  "try:\n    pass\nexcept Exception:\n    pass",
                                  "f = lambda v: v"])
def test_struct_statement(stmt):
    src = kernel(f"t = 1\n{stmt}\n")
    assert rules(src) == ["struct.statement"]
    # assert is how the docs check shapes; outside a kernel Python is unrestricted
    assert rules(kernel("assert x.shape[0] <= 128, 'too many rows'\n")) == []
    assert rules(f"{NKI}\n\ndef helper(x):\n    {stmt.splitlines()[0]}\n".replace(
        "try:", "pass")) == []


def test_struct_statement_classic():
    assert rules(kernel("t = 1\ndel t\n", head=CLASSIC)) == ["struct.statement-classic"]
    assert rules(kernel("raise ValueError('bad')\n", head=CLASSIC)) == []


def test_struct_is_operator():
    assert rules(kernel("if x is None:\n    pass\n")) == []
    assert rules(kernel("if x is not None:\n    pass\n")) == []
    assert rules(kernel("if x.shape is True:\n    pass\n")) == ["struct.is-operator"]


def test_struct_kw_only_kernel():
    assert rules(kernel("pass\n", params="x, flag=True")) == []
    assert rules(kernel("pass\n", params="x, *, flag=True")) == ["struct.kw-only-kernel"]


def test_struct_list_argument():
    assert rules(kernel("pass\n", params="x, stride=(1, 1)")) == []
    assert rules(kernel("pass\n", params="x, stride=[1, 1]")) == ["struct.list-argument"]


def test_syntax():
    (f,) = findings(NKI + "def k(:\n")
    assert f.rule == "syntax" and f.line == 5


def test_api_override_checks_against_the_other_table():
    src = kernel("i = nl.arange(128)\n", head=CLASSIC)
    assert rules(src) == []
    assert rules(src, api=Api.NKI) == ["api.removed"]


def test_index_zero_stride():
    base = ("t = nl.load(x.reshape((512,))[{} * nl.arange(128)[:, None] + "
            "nl.arange(512)[None, :]])\n")
    assert rules(kernel(base.format("1"), head=CLASSIC)) == []
    assert rules(kernel(base.format("0"), head=CLASSIC)) == ["index.zero-stride"]


def test_syntax_hostile_sources_are_findings_not_crashes():
    for src in ["(" * 300 + ")" * 300, NKI + "x = " + "-" * 100000 + "1\n", "a\0b",
                kernel("y = " + "[" * 90 + "]" * 90 + "\n")]:
        res = lint_source(src, "h.py")
        assert all(f.rule == "syntax" for f in res.findings)
    assert rules(NKI + "x = " + "-" * 100000 + "1\n") == ["syntax"]


def test_struct_statement_reaches_helpers_a_kernel_calls():
    helper = "\n\ndef helper(t):\n    del t\n\n\ndef unused(t):\n    del t\n"
    src = kernel("helper(x)\n") + helper
    fs = findings(src)
    assert [(f.rule, f.line) for f in fs] == [("struct.statement", 13)]


def test_mem_matmul():
    base = ("s = nl.ndarray((128, 128), dtype=nl.bfloat16, buffer=nl.{})\n"
            "m = nl.ndarray((128, 512), dtype=nl.bfloat16, buffer=nl.sbuf)\n"
            "p = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.{})\n"
            "nisa.nc_matmul(p[0:128, 0:512], s, m)\n")
    assert rules(kernel(base.format("sbuf", "psum"))) == []
    assert rules(kernel(base.format("psum", "psum"))) == ["mem.matmul"]
    assert rules(kernel(base.format("sbuf", "sbuf"))) == ["mem.matmul"]
    tr = ("d = nl.ndarray((128, 128), dtype=nl.bfloat16, buffer=nl.sbuf)\n"
          "s = nl.ndarray((128, 128), dtype=nl.bfloat16, buffer=nl.sbuf)\n"
          "nisa.nc_transpose(dst=d, data=s, engine=nisa.engine.{})\n")
    assert rules(kernel(tr.format("vector"))) == []       # VectorE: SBUF or PSUM
    assert rules(kernel(tr.format("tensor"))) == ["mem.matmul"]
    cl = ("s = nl.ndarray((128, 128), dtype=nl.bfloat16, buffer=nl.psum)\n"
          "p = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum)\n"
          "p[...] += nisa.nc_matmul(s, x)\n")
    assert rules(kernel(cl, head=CLASSIC)) == ["mem.matmul"]


def test_shape_partition_max():
    base = "t = nl.ndarray(({}, 512), dtype=nl.float32, buffer=nl.{})\n"
    assert rules(kernel(base.format(128, "sbuf"))) == []
    assert rules(kernel(base.format(129, "sbuf"))) == ["shape.partition-max"]
    assert rules(kernel(base.format(129, "psum"))) == ["shape.partition-max"]
    assert rules(kernel(base.format(4096, "shared_hbm"))) == []   # HBM has no partitions
    blocks = "t = nl.ndarray((256, nl.par_dim(128), 512), dtype=nl.float32, buffer=nl.sbuf)\n"
    assert rules(kernel(blocks, head=CLASSIC)) == []


def test_scope_tensor_out_of_scope():
    inside = ("for i in nl.affine_range(4):\n"
              "    tmp = nl.load(x[i])\n"
              "    nl.store(x[i], tmp)\n")
    after = inside + "nl.store(x[0], tmp)\n"
    hoisted = ("tmp = nl.ndarray((128, 512), dtype=nl.float32)\n"
               "for i in nl.affine_range(4):\n"
               "    tmp[...] = nl.load(x[i])\n"
               "nl.store(x[0], tmp)\n")
    rebound = inside + "for j in nl.affine_range(4):\n    tmp = nl.load(x[j])\n    y = tmp\n"
    assert rules(kernel(inside, head=CLASSIC)) == []
    assert rules(kernel(hoisted, head=CLASSIC)) == []
    assert rules(kernel(rebound, head=CLASSIC)) == []
    (f,) = findings(kernel(after, head=CLASSIC))
    assert (f.rule, f.line, f.col) == ("scope.tensor-out-of-scope", 12, 20)
    # an index from nl.arange is not a tensor; the current API has Python scoping
    idx = "for i in nl.affine_range(4):\n    ip = nl.arange(128)[:, None]\ny = ip\n"
    assert rules(kernel(idx, head=CLASSIC)) == []
    assert rules(kernel(after.replace("nl.affine_range", "range"))) == []
