"""The analysis part of the malformed corpus (tests/malformed/a_*.yaml): `nkigen check` exits 1
with the expected location and message and no traceback. (The front end's harness runs the whole
corpus; this runs only the analysis files so the analyze stage can be tested on its own.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nkigen.cli import main

FILES = sorted((Path(__file__).parent / "malformed").glob("a_*.yaml"))


def test_corpus_is_large_enough():
    assert len(FILES) >= 15


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_malformed_analysis_spec(path, capsys):
    head = path.read_text().splitlines()[0]
    m = re.fullmatch(r"# expect: (\d+):(\d+) (.+)", head)
    assert m, head
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    want = f"{path}:{m[1]}:{m[2]}: "
    assert any(line.startswith(want) and m[3] in line for line in err.splitlines()), err
