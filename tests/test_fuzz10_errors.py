"""Bad-input handling found by the fuzz10 campaign: an error raised on a statement that a
pre-pass added quoted the pre-pass's own note as if it were spec text."""

from __future__ import annotations

import pytest

from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text
from nkigen.pipeline import generate

PICK = """nkigen: 1
name: pick_total
doc: d
sizes: {{B: {{min: 1, max: {bmax}}}, C: {{min: 1, max: 8192}}}}
inputs: {{x: {{shape: [B, C], dtype: float32}}, lab: {{shape: [B], dtype: int32}},
         w: {{shape: [B], dtype: float32}}}}
outputs: {{tot: {{shape: [1], dtype: float32}}}}
compute:
  - tot[z] = sum(x[b, lab[b]] * w[b], b)
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_an_error_in_an_added_step_names_it_as_such(dialect):
    # B * C = 524288 * 8192 = 2**32 table elements: the flat row index of the label pick does
    # not fit int32 (codegen/gather.py); the gather runs in a statement codegen/gathered.py
    # adds, located at the user's statement
    with pytest.raises(NkigenError) as e:
        generate(load_spec_text(PICK.format(bmax=524288)), target="trn2", dialect=dialect)
    msg = str(e.value)
    assert ":9:5: compute[0]: statement 0 in a step nkigen adds for it: x_rows[b] = the " \
        "gather of statement 0" in msg
    assert "`x_rows" not in msg and "2147483648" in msg and "lower the max" in msg


def test_the_last_exact_table_size_builds():
    # the boundary: B * C = 262144 * 8192 = 2**31 elements (int32 flat indices)
    assert "x_rows" in generate(load_spec_text(PICK.format(bmax=262144)), target="trn2")


def test_a_users_statement_is_still_quoted():
    from nkigen.codegen.tilexpr import stmt_error

    spec = load_spec_text(PICK.format(bmax=2048))
    st = spec.statements[0]
    assert "statement 0 `tot[z] = sum(x[b, lab[b]] * w[b], b)`: why" in str(stmt_error(st, "why"))


def _cli(*args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "nkigen", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


ONE = """nkigen: 1
name: one
doc: d
sizes: {M: {value: 1}}
inputs: {x: {shape: [M], dtype: float32}}
outputs: {y: {shape: [M], dtype: float32}}
compute:
  - y[m] = x[m] * 2.0
"""


@pytest.mark.parametrize("n", [255, 256])
def test_gen_output_names_at_the_os_limit(tmp_path, n):
    # a 256-character -o name was an internal error (Path.is_dir raised ENAMETOOLONG), and a
    # 250-character one could not be written (its temporary name added 10 characters)
    (tmp_path / "s.yaml").write_text(ONE)
    name = "k" * (n - 3) + ".py"
    r = _cli("gen", "s.yaml", "-o", name, cwd=tmp_path)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    if n <= 255:
        assert r.returncode == 0 and (tmp_path / name).read_text().startswith("# generated")
    else:
        assert r.returncode == 1
        assert r.stderr.startswith(f"{name}: -o/--output: cannot write the kernel (got ")
        assert "File name too long" in r.stderr and "pass a writable file path" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.yaml"] + ([name] if n <= 255 else []))      # no temporary file left behind


def test_tune_with_a_cache_name_the_os_refuses_runs_without_it(tmp_path):
    (tmp_path / "s.yaml").write_text(ONE)
    r = _cli("tune", "s.yaml", "--cache", "c" * 300, "-q", cwd=tmp_path)
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("n", [255, 256])
def test_build_output_folder_names_at_the_os_limit(tmp_path, n):
    # a 250-character OUT was refused: the lock beside it (.OUT.nkigen-lock) was 263
    # characters; the names beside OUT now keep a cut name and a hash (atomic.side_name)
    (tmp_path / "s.yaml").write_text(ONE)
    name = "o" * n
    r = _cli("build", "s.yaml", "-o", name, cwd=tmp_path)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    if n <= 255:
        assert r.returncode == 0, r.stderr
        assert (tmp_path / name / "kernels" / "one.py").is_file()
        r = _cli("build", "s.yaml", "-o", name, cwd=tmp_path)
        assert r.returncode == 0 and "is up to date" in r.stdout, r.stdout + r.stderr
    else:
        assert r.returncode == 1
        assert f"{name}: -o/--out: cannot write the library (got " in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.yaml"] + ([name] if n <= 255 else []))      # no lock or staging folder left


def test_a_short_output_folder_keeps_its_side_names(tmp_path):
    from nkigen.library.atomic import SIDE_NAME_MAX, lock_path, side_name

    short = tmp_path / ("s" * SIDE_NAME_MAX)
    assert side_name(short) == short.name
    assert lock_path(tmp_path / "lib").name == ".lib.nkigen-lock"
    long = tmp_path / ("s" * (SIDE_NAME_MAX + 1))
    assert len(side_name(long)) == SIDE_NAME_MAX and side_name(long) != side_name(short)


BLOCKS = """nkigen: 1
name: mm_blocks
doc: d
sizes: {M: {min: 1, max: 4096}, K: {min: 1, max: 4096}, N: {min: 1, max: 4096}}
inputs: {a: {shape: [M, K], dtype: bfloat16}, b: {shape: [K, N], dtype: bfloat16}}
outputs: {c: {shape: [M, N], dtype: bfloat16}}
compute:
  - c[m, n] += a[m, k] * b[k, n]
schedule: {block: BLOCK}
"""


@pytest.mark.parametrize("target,legal", [("trn2", "{m: 8, n: 4, k: 8}"),
                                          ("trn1", "{m: 4, n: 4, k: 8}")])
def test_a_block_hint_over_the_sbuf_budget_names_a_legal_one(target, legal):
    # the error said only "use smaller block factors"; the spec language promises a hint
    # error names a legal value. The value it names builds, the hint does not.
    with pytest.raises(NkigenError) as e:
        generate(load_spec_text(BLOCKS.replace("BLOCK", "{m: 16, n: 4, k: 8}")), target=target)
    assert f"use smaller block factors, e.g. block: {legal}" in str(e.value)
    generate(load_spec_text(BLOCKS.replace("BLOCK", legal)), target=target)
    doubled = legal.replace("m: 8", "m: 16") if target == "trn2" else legal.replace("m: 4",
                                                                                    "m: 8")
    with pytest.raises(NkigenError):
        generate(load_spec_text(BLOCKS.replace("BLOCK", doubled)), target=target)
