"""CLI consistency: the exit codes the README states (0 ok, 1 a problem, 2 usage) for every
command, each command's own usage on a bad option, -j limits, live build and tune output, the
tuner cache location, and a start-up that imports only what the command needs."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import relu_spec, run

from nkigen import cli

COMMANDS = ["check", "explain", "schema", "gen", "sim", "build", "tune", "report"]


def argv_for(cmd: str, path: str, tmp_path: Path) -> list[str]:
    return {"check": ["check", path], "explain": ["explain", path], "gen": ["gen", path],
            "sim": ["sim", f"{path}::k"], "build": ["build", path, "-o", str(tmp_path / "o")],
            "tune": ["tune", path], "report": ["report", path]}[cmd]


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c != "schema"])
def test_missing_path_is_a_usage_error(cmd, tmp_path, capsys):
    missing = str(tmp_path / "nope.yaml")
    code, out, err = run(capsys, *argv_for(cmd, missing, tmp_path))
    assert code == 2, err
    assert f"nkigen {cmd}: error: no such file or folder: {missing}" in err
    assert err.startswith(f"usage: nkigen {cmd}")


@pytest.mark.parametrize("cmd", ["check", "build"])
def test_folder_without_specs_is_a_usage_error(cmd, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    code, out, err = run(capsys, *argv_for(cmd, str(tmp_path / "empty"), tmp_path))
    assert code == 2 and "no *.yaml or *.yml spec" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cmd", COMMANDS)
def test_unknown_option_gives_that_commands_usage(cmd, tmp_path, capsys):
    argv = [cmd] if cmd == "schema" else argv_for(cmd, "x.yaml", tmp_path)
    code, out, err = run(capsys, *argv, "--verbose")
    assert code == 2
    assert err.startswith(f"usage: nkigen {cmd} "), err
    assert "unrecognized arguments: --verbose" in err


def test_no_command_and_unknown_command(capsys):
    code, out, err = run(capsys)
    assert code == 2 and "COMMAND" in err
    code, out, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err


@pytest.mark.parametrize("cmd", ["build", "tune"])
@pytest.mark.parametrize("jobs,ok", [("-1", False), ("x", False), ("0", True), ("1", True),
                                     ("256", True), ("257", False),
                                     ("99999999999999999999", False)])
def test_jobs_limits(cmd, jobs, ok, capsys):
    parser = cli.build_parser(cmd)
    argv = [cmd, "spec.yaml", "-j", jobs] + (["-o", "out"] if cmd == "build" else [])
    if ok:
        args = parser.parse_args(argv)
        assert args.jobs >= 1
    else:
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 2
        assert "must be 0 (all cores) or 1..256" in capsys.readouterr().err


def test_version_imports_nothing_heavy():
    code = ("import runpy, sys\nsys.argv = ['nkigen', '--version']\n"
            "try:\n    runpy.run_module('nkigen', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('nkigen') or m in "
            "('numpy', 'sympy', 'argparse', 'jsonschema', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith("nkigen 0.")
    assert out[1] == "['nkigen']"   # run_module: __main__ not kept


@pytest.mark.parametrize("args,loaded", [
    ([], "['nkigen.codegen']"),     # check plans the kernel as build would (codegen)...
    (["--no-plan"], "[]"),          # ...unless told to stop after the analysis
])
def test_check_does_not_import_the_simulator_or_numpy(tmp_path, args, loaded):
    p = tmp_path / "k.yaml"
    p.write_text(relu_spec("k"))
    code = ("import sys\nfrom nkigen.cli import main\n"
            f"assert main(['check', *{args!r}, {str(p)!r}]) == 0\n"
            "print([m for m in ('numpy', 'ml_dtypes', 'nkigen.sim', 'nkigen.codegen') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[-1] == loaded


def test_build_prints_each_row_as_it_finishes_and_progress_on_a_pipe(tmp_path):
    from nkigen.library.progress import LiveTable
    from nkigen.library.unit import UnitResult

    out, err = io.StringIO(), io.StringIO()
    clock = iter([0.0, 0.5, 3.0]).__next__
    table = LiveTable(["alpha", "b"], out, err, clock=clock)
    table.add(UnitResult("alpha.yaml", "", "failed", "alpha", seconds=0.5))
    first = out.getvalue().splitlines()
    assert first[0].startswith("kernel") and first[1].split()[:2] == ["alpha", "failed"]
    assert err.getvalue() == ""            # under LINE_EVERY seconds: no progress line yet
    table.add(UnitResult("b.yaml", "", "cached", "b"))
    assert err.getvalue().splitlines() == ["nkigen build: 2/2 specs done (1 failed), 3.0 s"]
    table.close()
    assert out.getvalue().splitlines()[-1].startswith(
        "0 built, 1 cached, 1 failed (latency and bound: nkigen cost model")


def test_build_cli_rows_and_up_to_date(tmp_path, capsys):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "k.yaml").write_text(relu_spec("k"))
    out_dir = str(tmp_path / "lib")
    code, out, err = run(capsys, "build", str(specs), "-o", out_dir)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["kernel", "status", "latency", "(largest", "case)", "bound",
                                "time", "spec"]
    assert lines[1].startswith("k ") and " built " in lines[1]
    assert lines[-1] == f"wrote {out_dir}"
    before = (tmp_path / "lib" / "manifest.json").stat().st_mtime_ns
    code, out, err = run(capsys, "build", str(specs), "-o", out_dir)
    assert code == 0 and out.splitlines()[-1] == f"{out_dir} is up to date"
    assert "0 built, 1 cached, 0 failed" in out
    assert (tmp_path / "lib" / "manifest.json").stat().st_mtime_ns == before   # not rewritten
    (tmp_path / "lib" / "README.md").unlink()            # a library file gone: written again
    code, out, err = run(capsys, "build", str(specs), "-o", out_dir)
    assert out.splitlines()[-1] == f"wrote {out_dir}" and (tmp_path / "lib" / "README.md").exists()


def test_tune_progress_lines_on_a_pipe():
    from nkigen.commands.tune import TuneProgress
    from nkigen.tune.search import Candidate

    class C:
        def __init__(self, key, lat, legal=True):
            self.key, self.latency_us, self.legal = key, lat, legal

    stream = io.StringIO()
    ticks = iter([0.0, 0.1, 0.2, 0.3, 5.0, 5.0, 6.0, 6.0])
    p = TuneProgress("k", stream, clock=lambda: next(ticks))
    p("proxy", C("default", 20.0))        # first candidate of a phase: a line
    p("proxy", C("tiles m=64", 10.0))     # within LINE_EVERY: silent
    p("final", C("tiles m=64", 30.0))     # a new phase: a line
    p.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("tuning k: 1 evaluated, exploring at proxy sizes, best so far "
                               "20.0 us (default)")
    assert lines[1].startswith("tuning k: 3 evaluated, at the real sizes, best so far 30.0 us")
    assert lines[-1].startswith("tuning k: 3 evaluated")
    assert len(lines) == 3
    assert Candidate   # the real candidate type has the fields used above
    assert {"key", "latency_us", "legal"} <= set(Candidate.__dataclass_fields__)


@pytest.mark.parametrize("env,expected", [
    ({"NKIGEN_CACHE_DIR": "/c"}, "/c/tune"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/nkigen/tune"),
    ({"XDG_CACHE_HOME": "relative"}, "~/.cache/nkigen/tune"),   # XDG: absolute paths only
    ({}, "~/.cache/nkigen/tune"),
    ({"NKIGEN_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}, "/c/tune"),
])
def test_tuner_cache_location(env, expected, monkeypatch):
    from nkigen.tune.cache import default_dir

    for k in ("NKIGEN_CACHE_DIR", "NKIGEN_TUNE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert default_dir() == Path(expected).expanduser()


def test_command_modules_import_cheaply():
    """`nkigen --help` imports every command module: none may pull in numpy, sympy or the
    simulator at import time (they are imported when the command runs)."""
    code = ("import sys\nfrom nkigen import cli\nparser = cli.build_parser()\n"
            "print(sorted(m for m in ('numpy', 'sympy', 'ml_dtypes', 'jsonschema', 'nkigen.sim',"
            " 'nkigen.codegen', 'nkigen.analysis') if m in sys.modules))\n"
            "print(sorted(cli._available()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert {"check", "build", "sim", "tune", "report"} <= set(eval(out[1]))


def test_tune_cli_shows_progress_on_a_pipe_and_honours_quiet(tmp_path, capsys):
    p = tmp_path / "k.yaml"
    p.write_text(relu_spec("k"))
    argv = ["tune", str(p), "--sizes", "M=256,N=512", "-j", "1", "--cache", str(tmp_path / "c")]
    code, out, err = run(capsys, *argv)
    assert code == 0 and out.startswith("k: ")
    lines = err.splitlines()
    assert lines and all(line.startswith("tuning k: ") for line in lines), err
    assert "best so far" in lines[-1]
    code, out, err = run(capsys, *argv, "-q")
    assert code == 0 and err == ""
