"""The malformed corpus: every tests/malformed/*.yaml holds one mistake and says, on its first
line, where nkigen must report it and what the message must say:

    # expect: LINE:COL <substring of the message>

Files that cannot carry a comment (binary, not UTF-8, oversized) are generated here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nkigen.cli import main

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")


def run_check(capsys, *paths: str) -> tuple[int, str, str]:
    code = main(["check", *paths])
    out, err = capsys.readouterr()
    return code, out, err


def test_corpus_is_large_enough():
    own = [f for f in FILES if not f.name.startswith("a_")]
    assert len(own) >= 60


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_malformed_spec_is_rejected_at_the_right_place(path: Path, capsys):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = EXPECT.match(first)
    assert m, f"{path.name}: first line must be '# expect: LINE:COL substring'"
    line, col, substring = m.groups()
    code, out, err = run_check(capsys, str(path))
    assert code == 1, err
    assert "Traceback" not in err + out
    assert "internal error" not in err
    assert f"{path}:{line}:{col}:" in err, err
    assert substring in err, err
    assert out == ""


def _check_generated(tmp_path: Path, capsys, name: str, raw: bytes, where: str, words: str):
    p = tmp_path / name
    p.write_bytes(raw)
    code, out, err = run_check(capsys, str(p))
    assert code == 1
    assert "Traceback" not in err
    assert f"{p}:{where}:" in err, err
    assert words in err, err


def test_binary_file(tmp_path, capsys):
    raw = b"nkigen: 1\nname: k\x00\x01\x02\n"
    _check_generated(tmp_path, capsys, "bin.yaml", raw, "2:8", "file is binary")


def test_not_utf8(tmp_path, capsys):
    raw = b"nkigen: 1\nname: caf\xe9\n"
    _check_generated(tmp_path, capsys, "latin1.yaml", raw, "2:10", "not valid UTF-8")


def test_utf8_bom_is_accepted_and_positions_hold(tmp_path, capsys):
    raw = "\ufeffnkigen: 2\n".encode()
    _check_generated(tmp_path, capsys, "bom.yaml", raw, "1:9", "nkigen: must be 1")


def test_too_large(tmp_path, capsys):
    p = tmp_path / "huge.yaml"
    p.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    code, _, err = run_check(capsys, str(p))
    assert code == 1
    assert "too large" in err and "Traceback" not in err


def test_empty_bytes(tmp_path, capsys):
    _check_generated(tmp_path, capsys, "empty.yaml", b"", "1:1", "spec file is empty")


def test_several_schema_errors_are_all_reported(tmp_path, capsys):
    p = tmp_path / "many.yaml"
    p.write_text(
        "nkigen: 2\n"
        "name: Bad\n"
        "sizes:\n"
        "  M: {multiple_of: -4}\n"
        "inputs:\n"
        "  a: {shape: [M], dtype: bf16}\n"
        "outputs:\n"
        "  c: {shape: [M], dtype: float32, layuot: x}\n"
        "compute:\n"
        "  - c[m] = a[m]\n"
        "schedule: {buffers: 9}\n"
    )
    code, _, err = run_check(capsys, str(p))
    assert code == 1
    want = [
        "1:9: nkigen: must be 1",
        "2:7: name: kernel name must be a lower-case identifier",
        "4:20: sizes.M.multiple_of: must be a positive integer (got -4); use e.g. 128",
        "6:26: inputs.a.dtype: must be one of",
        "8:35: outputs.c.layuot: unknown field",
        "11:21: schedule.buffers: must be at most 4 (got 9)",
    ]
    lines = err.splitlines()
    assert len(lines) == len(want), err
    for w, line in zip(want, lines):
        assert line.startswith(f"{p}:") and w in line, (w, line)


def test_several_semantic_errors_are_all_reported(tmp_path, capsys):
    p = tmp_path / "sem.yaml"
    p.write_text(
        "nkigen: 1\n"
        "name: k\n"
        "sizes: {M: {}}\n"
        "inputs:\n"
        "  a: {shape: [M], dtype: float32}\n"
        "outputs:\n"
        "  c: {shape: [M], dtype: float32}\n"
        "compute:\n"
        "  - c[m] = gleu(a[m])\n"
        "  - c[m] = a[m, m]\n"
        "  - a[m] = c[m]\n"
    )
    code, _, err = run_check(capsys, str(p))
    assert code == 1
    assert f"{p}:9:12: compute[0]: unknown function 'gleu'; did you mean 'gelu'?" in err
    assert f"{p}:10:12: compute[1]: 'a' has rank 1 but is accessed with 2 indices" in err
    assert f"{p}:11:5: compute[2]: cannot write input 'a'" in err
    assert len(err.splitlines()) == 3


@pytest.mark.parametrize("name", ["z_shape_missing_comma", "n_collision_input_temp",
                                  "n_tensor_builtin", "t_undefined_tensor", "s_dtype",
                                  "s_unknown_top_field", "n_collision_param_tensor"])
def test_one_mistake_gives_one_diagnostic(name, capsys):
    """No cascades: a broken declaration must not trigger follow-up errors elsewhere."""
    code, _, err = run_check(capsys, str(CORPUS / f"{name}.yaml"))
    assert code == 1 and len(err.splitlines()) == 1, err
