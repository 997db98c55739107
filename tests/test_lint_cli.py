"""`nkigen lint` on the command line: exit codes, output formats, folders, the rule table."""

from __future__ import annotations

import json

from cli_helpers import run

CLEAN = """\
import nki
import nki.isa as nisa
import nki.language as nl


@nki.jit
def k(x):
    t = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x[0:128, 0:512])
    out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out
"""
BAD = CLEAN.replace("    return out", "    del t\n    return out")


def test_clean_file_exits_0(tmp_path, capsys):
    p = tmp_path / "k.py"
    p.write_text(CLEAN)
    code, out, err = run(capsys, "lint", str(p))
    assert code == 0 and out == ""
    assert "1 file: 0 findings in 0 files" in err


def test_finding_exits_1_with_located_line(tmp_path, capsys):
    p = tmp_path / "k.py"
    p.write_text(BAD)
    code, out, err = run(capsys, "lint", str(p))
    assert code == 1
    assert out == f"{p}:12:5: lint[struct.statement]: del inside a kernel (got del); " \
                  "drop it: a tile lives until the end of its scope\n"


def test_json_format(tmp_path, capsys):
    p = tmp_path / "k.py"
    p.write_text(BAD)
    code, out, _ = run(capsys, "lint", "--format", "json", str(p))
    doc = json.loads(out)
    (f,) = doc["files"][0]["findings"]
    assert code == 1 and doc["files"][0]["api"] == "nki"
    assert (f["rule"], f["line"], f["col"], f["level"]) == ("struct.statement", 12, 5, "error")
    assert f["source"].startswith("S29 nki/get-started/nki-language-guide.rst")


def test_folder_is_searched_and_non_nki_files_are_skipped(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text(CLEAN)
    (tmp_path / "b.py").write_text("print('not a kernel')\n")
    code, out, err = run(capsys, "lint", str(tmp_path))
    assert code == 0 and out == ""
    assert "b.py: imports no NKI API" in err and "2 files: 0 findings" in err


def test_api_override(tmp_path, capsys):
    p = tmp_path / "k.py"
    p.write_text("import nki.language as nl\ni = nl.arange(4)\n")
    assert run(capsys, "lint", str(p))[0] == 1               # removed in nki 0.2
    assert run(capsys, "lint", "--api", "neuronxcc", str(p))[0] == 0


def test_usage_errors_exit_2(tmp_path, capsys):
    assert run(capsys, "lint")[0] == 2
    assert run(capsys, "lint", str(tmp_path / "missing.py"))[0] == 2
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "lint", str(tmp_path / "empty"))
    assert code == 2 and "no *.py file" in err
    assert run(capsys, "lint", "--api", "cuda", str(tmp_path))[0] == 2


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path, capsys):
    p = tmp_path / "k.py"
    p.write_bytes(b"\xff\xfe\x00bad")
    code, _, err = run(capsys, "lint", str(p))
    assert code == 1 and err.startswith(f"{p}:1:1: lint[encoding]: the file is not UTF-8 text "
                                        "(got byte 0xff at offset 0)"), err


def test_rules_prints_the_table(capsys):
    code, out, _ = run(capsys, "lint", "--rules")
    assert code == 0
    assert out.startswith("# nkigen lint table")
    assert "| engine.gpsimd-rsqrt | nki/neuronxcc | error |" in out
    assert "## nki:" in out and "## neuronxcc:" in out
