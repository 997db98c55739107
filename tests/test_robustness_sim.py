"""Robustness of `nkigen sim` and `nkigen tune`, and real exit codes/stderr through a subprocess.

`sim` runs a user's kernel file: bad --input syntax, missing kernels, files that are not Python,
and kernels that raise their own Python errors are reported with a location (the kernel file's
line for the user's bugs), exit 1, and no traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import relu_spec, run

ROOT = Path(__file__).resolve().parents[1]
LOCATED = re.compile(r":\d+:\d+: ")

KERNEL = '''\
import nki
import nki.language as nl


@nki.jit
def copy(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.load(a)
    nl.store(out, value=t)
    return out


@nki.jit
def divide(a):
    x = 1 // 0
    return a


@nki.jit
def recurse(a):
    return recurse(a)


@nki.jit
def exits(a):
    raise SystemExit(3)


@nki.jit
def interrupts(a):
    raise KeyboardInterrupt


@nki.jit
def returns_none(a):
    return None


@nki.jit
def bad_index(a):
    t = nl.load(a[0:999999, 0:4])
    return a


def takes_varargs(*args, **kwargs):
    return args[0]


not_a_function = 3
'''

SPEC = relu_spec()


@pytest.fixture
def kfile(tmp_path):
    p = tmp_path / "kern.py"
    p.write_text(KERNEL)
    return p


def test_sim_good_kernel(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "a=128x8")
    assert code == 0, err
    assert "output 0: shape [128, 8]" in out


@pytest.mark.parametrize("spec", [
    "a=12x:float32", "a=0x4:float32", "a=-1x4", "a=4x-1", "a=x", "a=", "=4x4", "a", "a=4x4x",
    "a=1e3x4", "a=4.0x4", "a=0x10x4",
])
def test_sim_bad_input_syntax(spec, kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", spec)
    assert code in (1, 2), (spec, code, err)
    assert "--input" in err or "input" in err, err
    assert "output 0" not in out


@pytest.mark.parametrize("spec", ["a=١٢٨x8", "a=128 x 8", "a=128x8:", "a=128X8"])
def test_sim_lenient_input_syntax(spec, kfile, capsys):
    """Accepted leniently (int() reads Unicode digits and spaces; an empty dtype is float32)."""
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", spec)
    assert code in (0, 1), err


@pytest.mark.parametrize("dtype", ["float128", "floaty", "int", "object", "str", "float32 ",
                                   "../x", "__class__", "np.float32", "float32:extra"])
def test_sim_unknown_dtype(dtype, kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", f"a=128x8:{dtype}")
    assert code == 1, (dtype, code, err)
    assert dtype.strip() in err or "dtype" in err, err


def test_sim_unknown_dtype_located_on_command_line(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "a=128x8:float128")
    assert code == 1
    assert "nkigen/" not in err and "--input" in err, err


def test_sim_huge_shape_cost_only_or_clean_error(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "a=4096x4194304", "--cost-only")
    assert code in (0, 1), err


@pytest.mark.parametrize("shape", ["4000000000000x4000000000000",
                                   "99999999999999999999x99999999999999999999"])
def test_sim_unallocatable_shape(shape, kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", f"a={shape}")
    assert code == 1 and "a=" in err


def test_sim_missing_kernel_name(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::nope", "-i", "a=128x8")
    assert code == 1 and "nope" in err and str(kfile) in err, err


@pytest.mark.parametrize("target", ["{k}", "{k}::", "::copy", "{k}:copy", "{k}::copy::x",
                                    "{d}::copy", "{k}::not_a_function",
                                    "{k}::__builtins__", "{k}::nl"])
def test_sim_bad_kernel_reference(target, kfile, capsys):
    arg = target.format(k=kfile, d=kfile.parent)
    code, out, err = run(capsys, "sim", arg, "-i", "a=128x8")
    assert code == 1, (arg, code, err)
    assert err


def test_sim_missing_kernel_file_is_a_usage_error(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile.parent}/missing.py::copy", "-i", "a=128x8")
    assert code == 2 and "no such file or folder" in err and "missing.py" in err, err


@pytest.mark.parametrize("content", [
    b"\x00\x01\x02binary", b"\xff\xfe not utf8", b"def (:\n", b"raise RuntimeError('at import')\n",
    b"import no_such_module_xyz\n", b"", b"x = 1\n" * 3, b"import sys\nsys.exit(5)\n"])
def test_sim_bad_kernel_file(content, tmp_path, capsys):
    p = tmp_path / "bad.py"
    p.write_bytes(content)
    code, out, err = run(capsys, "sim", f"{p}::k", "-i", "a=128x8")
    assert code == 1, (content, code, err)
    assert str(p) in err, err


def test_sim_kernel_python_error_located(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::divide", "-i", "a=128x8")
    assert code == 1
    line = KERNEL.splitlines().index("    x = 1 // 0") + 1
    assert f"{kfile}:{line}" in err and "ZeroDivisionError" in err, err


def test_sim_kernel_recursion_located(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::recurse", "-i", "a=128x8")
    assert code == 1
    assert str(kfile) in err and "Recursion" in err, err


def test_sim_kernel_system_exit(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::exits", "-i", "a=128x8")
    assert code == 1 and str(kfile) in err


def test_sim_kernel_bad_index(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::bad_index", "-i", "a=128x8")
    assert code == 1 and str(kfile) in err, err


def test_sim_kernel_returns_none(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::returns_none", "-i", "a=128x8")
    assert code in (0, 1), err


def test_sim_input_names(kfile, capsys):
    code, out, err = run(capsys, "sim", f"{kfile}::copy")
    assert code == 1 and "'a'" in err
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "a=128x8", "-i", "b=128x8")
    assert code == 1 and "b" in err
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "a=128x8", "-i", "a=256x8")
    assert code in (0, 1), err


@pytest.mark.parametrize("where", ["{t}/nodir/trace.json", "{t}", "{f}/trace.json"])
def test_sim_trace_unwritable(where, kfile, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep")
    dest = where.format(t=tmp_path, f=f)
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "a=128x8", "--trace", dest)
    if code == 0:
        assert Path(dest).is_file()
    else:
        assert code == 1 and err
    assert f.read_text() == "keep"


# ---- tune --------------------------------------------------------------------------------------

@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "k.yaml"
    p.write_text(SPEC)
    return p


@pytest.mark.parametrize("sizes", ["Q=128", "M=0", "M=-128", "M=abc", "M=1e3", "M=", "=128",
                                   "M=100", "M=128,M=256", "M=١٢٨", "N=2000", "M=128;N=8",
                                   "M=" + "9" * 40, "M=1073741824,N=1024"])
def test_tune_bad_sizes(sizes, spec, tmp_path, capsys):
    code, out, err = run(capsys, "tune", str(spec), "--sizes", sizes, "--no-cache")
    assert code == 1, (sizes, code, err)
    assert "--sizes" in err, err


def test_tune_cache_is_a_file(spec, tmp_path, capsys):
    """An unusable cache only costs time: the tune still works and the file is untouched."""
    f = tmp_path / "cache"
    f.write_text("not a folder")
    for cache in (f, f / "sub"):
        code, out, err = run(capsys, "tune", str(spec), "--sizes", "M=128,N=8",
                             "--cache", str(cache))
        assert code == 0, err
    assert f.read_text() == "not a folder"


def test_tune_cache_corrupt_file_ignored(spec, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, out, err = run(capsys, "tune", str(spec), "--sizes", "M=128,N=8", "--cache", str(cache))
    assert code == 0, err
    for p in cache.glob("*.json"):
        p.write_bytes(b"\xff{not json")
    code, out2, err = run(capsys, "tune", str(spec), "--sizes", "M=128,N=8", "--cache", str(cache))
    assert code == 0, err


@pytest.mark.parametrize("argv", [["--top", "0"], ["--top", "-1"], ["-j", "x"]])
def test_tune_bad_options(argv, spec, capsys):
    code, out, err = run(capsys, "tune", str(spec), "--no-cache", *argv)
    assert code == 2, err


# ---- real processes: exit codes and stderr -----------------------------------------------------

def _proc(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NKIGEN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "nkigen", *argv], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd or ROOT)


@pytest.mark.slow
def test_subprocess_exit_codes(tmp_path, kfile):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("relu(", "rleu("))
    bomb = ROOT / "tests" / "hostile" / "bomb.yaml"
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    cases = [
        (["check", str(bad)], 1, str(bad)),
        (["gen", str(bomb)], 1, str(bomb)),
        (["explain", str(deep)], 1, str(deep)),
        (["check", str(tmp_path / "missing.yaml")], 2, "missing.yaml"),
        (["gen", "--no-such-flag"], 2, "usage"),
        ([], 2, "usage"),
        (["sim", f"{kfile}::divide", "-i", "a=128x8"], 1, "ZeroDivisionError"),
        (["sim", f"{kfile}::copy", "-i", "a=0x4"], 1, "--input"),
        (["tune", str(bad)], 1, str(bad)),
        (["build", str(bad), "-o", str(tmp_path / "lib")], 1, str(bad)),
    ]
    for argv, want, needle in cases:
        r = _proc(*argv)
        assert r.returncode == want, (argv, r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr + r.stdout, (argv, r.stderr[-3000:])
        assert needle in r.stderr, (argv, r.stderr[-2000:])
    assert not (tmp_path / "lib").exists()


def test_subprocess_broken_pipe(tmp_path):
    """`nkigen schema | head -1` style: a closed stdout is not an error with a traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "nkigen", "schema"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(10)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err, err
