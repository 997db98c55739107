"""`nkigen check` and `nkigen schema`: exit codes, folder expansion, hostile paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nkigen import pipeline
from nkigen.cli import main
from nkigen.schema import kernel_schema

GOOD = """\
nkigen: 1
name: k
sizes: {M: {}}
inputs:
  a: {shape: [M], dtype: float32}
outputs:
  c: {shape: [M], dtype: float32}
compute:
  - c[m] = relu(a[m])
"""
BAD = GOOD.replace("relu(", "rleu(")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_valid_file(tmp_path, capsys):
    p = tmp_path / "k.yaml"
    p.write_text(GOOD)
    code, out, err = run(capsys, "check", str(p))
    assert (code, out, err) == (0, f"ok  {p}\n", "")


def test_invalid_file(tmp_path, capsys):
    p = tmp_path / "k.yaml"
    p.write_text(BAD)
    code, out, err = run(capsys, "check", str(p))
    assert code == 1 and out == ""
    assert err == (f"{p}:9:12: compute[0]: unknown function 'rleu'; did you mean 'relu'?\n")


def test_folder_is_searched_recursively_in_sorted_order(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.yml").write_text(GOOD.replace("name: k\n", "name: k2\n"))
    (tmp_path / "a.yaml").write_text(GOOD)   # kernel names must differ (a library's rule)
    (tmp_path / "c.yaml").write_text(BAD)
    (tmp_path / "notes.txt").write_text("not a spec")
    (tmp_path / "dir.yaml").mkdir()            # a folder named like a spec: searched, not read
    code, out, err = run(capsys, "check", str(tmp_path))
    assert code == 1
    assert out.splitlines() == [f"ok  {tmp_path / 'a.yaml'}", f"ok  {tmp_path / 'b' / 'z.yml'}"]
    assert err.splitlines()[0].startswith(f"{tmp_path / 'c.yaml'}:9:12:")
    assert err.splitlines()[-1] == "3 specs: 2 ok, 1 with problems"


@pytest.mark.parametrize("argv,words", [
    ((), "give at least one spec"),
    (("does/not/exist.yaml",), "no such file or folder"),
])
def test_usage_errors(argv, words, capsys):
    code, _, err = run(capsys, "check", *argv)
    assert code == 2 and words in err


def test_folder_without_specs_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("")
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 2 and "no *.yaml or *.yml spec" in err


def test_hostile_paths(tmp_path, capsys):
    loop = tmp_path / "loop.yaml"
    os.symlink(loop, loop)                               # symlink loop
    os.symlink(tmp_path, tmp_path / "self")              # directory loop: not followed
    dangling = tmp_path / "dangling.yaml"
    os.symlink(tmp_path / "nothing", dangling)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)                                       # would block a naive reader
    (tmp_path / "huge.yaml").write_bytes(b"a: 1\n" * 300_000)
    code, out, err = run(capsys, "check", str(tmp_path))
    assert code == 1 and out == ""
    assert f"{dangling}: no such file" in err
    assert f"{fifo}: is not a regular file" in err
    assert f"{tmp_path / 'huge.yaml'}: file is too large" in err
    assert f"{loop}: cannot read the file" in err
    assert err.splitlines()[-1] == "4 specs: 0 ok, 4 with problems"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path, capsys):
    p = tmp_path / "secret.yaml"
    p.write_text(GOOD)
    p.chmod(0)
    code, _, err = run(capsys, "check", str(p))
    assert code == 1 and "permission denied" in err


def test_a_bug_in_a_later_stage_is_reported_without_traceback(tmp_path, capsys, monkeypatch):
    p = tmp_path / "k.yaml"
    p.write_text(GOOD)

    def boom(path):
        raise RuntimeError("kaput")

    monkeypatch.setattr(pipeline, "check", boom)
    monkeypatch.setattr(pipeline, "load_spec", boom)
    monkeypatch.delenv("NKIGEN_DEBUG", raising=False)
    code, _, err = run(capsys, "check", str(p))
    assert code == 1 and "internal error in nkigen (RuntimeError: kaput)" in err


def test_schema_command(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out) == kernel_schema()
    code, out, _ = run(capsys, "schema", "--path")
    assert code == 0 and json.loads(Path(out.strip()).read_text()) == kernel_schema()
