"""The lint stage of the library build: a generated kernel with a finding fails its spec with
located diagnostics; a clean one is built. Uses the fake pipeline of test_build_fakes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from test_build_fakes import FAKE, spec_text

from nkigen.library.build import BuildOptions, build
from nkigen.library.stages import _lint


def fake_lint(source: str, path: str, dialect: str) -> list[tuple]:
    if "Fake kernel bad" in source:
        return [(7, 5, "struct.statement", "raise inside a kernel", "raise",
                 "check sizes with assert")]
    return []


def _specs(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    (d / "bad.yaml").write_text(spec_text("bad"))
    (d / "good.yaml").write_text(spec_text("good"))
    return d


def test_lint_finding_fails_the_spec_with_located_diagnostics(tmp_path):
    specs = _specs(tmp_path)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib"), keep_going=True),
                replace(FAKE, lint=fake_lint))
    by = {r.name: r for r in rep.results}
    assert by["good"].status == "built"
    assert by["bad"].status == "failed"
    head, line = by["bad"].diagnostics
    assert "lint: the generated nki kernel does not lint clean (got 1 finding)" in head
    assert head.startswith(str(specs / "bad.yaml"))
    assert line == ("kernels/bad.py:7:5: lint[struct.statement]: raise inside a kernel "
                    "(got raise); check sizes with assert")


def test_no_lint_stage_builds_everything(tmp_path):
    rep = build(BuildOptions((str(_specs(tmp_path)),), str(tmp_path / "lib")), FAKE)
    assert [r.status for r in rep.results] == ["built", "built"]


def test_real_lint_stage_uses_the_dialect_table():
    src = "import nki.language as nl\ni = nl.arange(4)\n"
    assert [f[2] for f in _lint(src, "kernels/k.py", "nki")] == ["api.removed"]
    assert _lint(src, "kernels/k.py", "neuronxcc") == []


def test_no_lint_option_skips_the_stage_and_keys_the_cache_apart(tmp_path):
    specs = _specs(tmp_path)
    out = tmp_path / "lib"
    stages = replace(FAKE, lint=fake_lint)
    rep = build(BuildOptions((str(specs),), str(out), lint=False), stages)
    assert [r.status for r in rep.results] == ["built", "built"]
    # the same specs with the lint stage on: the unlinted kernels are not reused from the cache
    rep = build(BuildOptions((str(specs),), str(out), keep_going=True), stages)
    assert {r.name: r.status for r in rep.results} == {"bad": "failed", "good": "built"}


def test_build_command_no_lint_flag():
    from nkigen.cli import build_parser

    p = build_parser()
    assert p.parse_args(["build", "s", "-o", "o"]).lint is True
    assert p.parse_args(["build", "s", "-o", "o", "--no-lint"]).lint is False
