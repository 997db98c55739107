"""Robustness of generated code against hostile names: a spec name that is a Python keyword,
soft keyword, builtin, dunder, module the kernel imports, or a local the generator itself uses
(``nfc``, ``p0_n``, ``kt``...) either gets a located error from `check` (and `gen`), or yields a
kernel that parses, keeps its signature and verifies in the simulator against the reference.
"""

from __future__ import annotations

import ast

import pytest
from test_robustness_gen import LOCATED, _write, check_or_verify, elementwise, matmul, run

# ---- hostile names -----------------------------------------------------------------------------

# locals the generator itself uses (seen in generated kernels), module names, builtins, dunders
LOWER_NAMES = [
    "os", "sys", "self", "np", "nl", "nki", "nisa", "math", "ml_dtypes", "__import__", "__x",
    "_", "_x", "nfc", "p0_n", "psz_n", "f0_n", "fsz", "psz", "p0", "f0", "t", "t1", "c0", "i_r",
    "x_t", "a_t_c", "kt", "nkt", "kb", "it", "ps", "pt", "w", "k", "m", "range", "print", "len",
    "tuple", "min", "max", "sum", "relu", "exp", "affine_range", "shared_hbm", "psum", "sbuf",
    "float32", "jit", "kernel", "result", "ret", "out", "lambda", "match", "case", "type",
]
UPPER_NAMES = ["M", "N", "K", "P", "F", "T", "ValueError", "Exception", "True", "None", "False",
               "NotImplemented", "Ellipsis", "NKI", "M_"]


def _lower_params():
    for role in ("inp", "out", "param", "im", "kernel"):
        for name in LOWER_NAMES if role in ("inp", "im") else LOWER_NAMES[::2]:
            yield pytest.param(role, name, id=f"{role}-{name}")


@pytest.mark.parametrize("role,name", list(_lower_params()))
def test_hostile_lower_name(role, name, tmp_path, capsys):
    check_or_verify(tmp_path, capsys, elementwise(**{role: name}))


@pytest.mark.parametrize("name", UPPER_NAMES)
@pytest.mark.parametrize("role", ["size_m", "size_n"])
def test_hostile_size_name(role, name, tmp_path, capsys):
    if (role, name) in (("size_m", "N"), ("size_n", "M")):
        pytest.skip("that is a plain collision between the two sizes")
    check_or_verify(tmp_path, capsys, elementwise(**{role: name}))


@pytest.mark.parametrize("name", ["nfc", "kt", "kb", "kk0", "ktsz", "nkt", "psz", "t1", "acc",
                                  "m_blk", "a_t_c", "ps"])
@pytest.mark.parametrize("role", ["a", "b", "c", "acc", "ik"])
def test_hostile_matmul_name(role, name, tmp_path, capsys):
    if name == role or (role != "acc" and name == "acc"):
        pytest.skip("collides with another spec name on purpose elsewhere")
    check_or_verify(tmp_path, capsys, matmul(**{role: name}))


def test_collisions_are_located(tmp_path, capsys):
    for data in (elementwise(inp="c"), elementwise(param="a"), elementwise(im="a"),
                 elementwise(im="n"), elementwise(kernel="a")):
        p = _write(tmp_path, data)
        code, out, err = run(capsys, "check", str(p))
        if data["name"] == "a" and code == 0:
            continue  # the kernel's own name may equal an argument name: it is shadowed, inert
        assert code == 1 and LOCATED.search(err), (data, err)


@pytest.mark.parametrize("key", ["on", "yes", "no", "off", "null", "true", "~", "1", "0x10",
                                 "1e3", ".inf"])
def test_yaml_special_keys_as_names(key, tmp_path, capsys):
    """Unquoted keys YAML 1.1 reads as bools/nulls/numbers never become tensor names silently."""
    text = f"""\
nkigen: 1
name: k
sizes: {{M: {{}}}}
inputs:
  {key}: {{shape: [M], dtype: float32}}
outputs:
  c: {{shape: [M], dtype: float32}}
compute:
  - c[m] = relu({key}[m])
"""
    p = _write(tmp_path, text)
    code, out, err = run(capsys, "check", str(p))
    if code == 0:  # accepted as the string name: the kernel must take it as its argument
        code, src, err = run(capsys, "gen", str(p))
        assert code == 0, err
        fn = next(n for n in ast.parse(src).body
                  if isinstance(n, ast.FunctionDef) and n.decorator_list)
        assert [a.arg for a in fn.args.args] == [key]
        return
    assert code == 1 and LOCATED.search(err), err
    assert "internal error" not in err




def test_summed_index_with_leading_underscore(tmp_path, capsys):
    assert check_or_verify(tmp_path, capsys, matmul(ik="_k")) == "verified"


def test_summed_index_with_trailing_underscore(tmp_path, capsys):
    assert check_or_verify(tmp_path, capsys, matmul(ik="k_")) == "verified"
