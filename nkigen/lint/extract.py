"""Writes the generated API tables ``nkigen/lint/api_nki.py`` and ``api_classic.py`` from the
public API reference (stage: lint, table maintenance; not used at lint time).

Usage: ``python -m nkigen.lint.extract GIT_DIR [--check]`` where GIT_DIR is a bare clone of
github.com/aws-neuron/aws-neuron-sdk (e.g. the mirror ``fetch`` gives). It reads, with
``git show``:

- the API stub modules (signatures and module-level names): S29 ``nki/api/nki/**/__init__.py``
  at tag v2.29.0 (SDK 2.29 = nki 0.3, the version nkigen targets), S25
  ``general/nki/api/nki/**/__init__.py`` at tag v2.25.0;
- the autosummary lists of the API pages (``nki.language.rst``, ``nki.isa.rst``, ...), for
  documented names the stubs do not define;
- the operator and activation tables of ``nki.api.shared.rst``.

Only facts are taken (names, parameter names and kinds, table cells); no prose. The output is
deterministic; ``--check`` exits 1 when the committed modules differ from a fresh extraction.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Source:
    api: str            # "NKI" | "CLASSIC" (Api member names)
    key: str            # citation key
    rev: str            # git revision
    root: str           # docs folder
    version: str
    stubs: tuple[tuple[str, str], ...]    # (module, path under root)
    pages: tuple[tuple[str, str], ...]    # (module, autosummary page under root)
    out: str


SOURCES = (
    Source("NKI", "S29", "v2.29.0", "nki/api", "nki 0.3",
           (("nki", "nki/__init__.py"), ("nki.isa", "nki/isa/__init__.py"),
            ("nki.language", "nki/language/__init__.py"),
            ("nki.collectives", "nki/collectives/__init__.py")),
           (("nki", "nki.rst"), ("nki.isa", "nki.isa.rst"),
            ("nki.language", "nki.language.rst"),
            ("nki.collectives", "nki.collectives.rst")),
           "api_nki.py"),
    Source("CLASSIC", "S25", "v2.25.0", "general/nki/api", "neuronxcc.nki (SDK 2.25)",
           (("nki", "nki/__init__.py"), ("nki.isa", "nki/isa/__init__.py"),
            ("nki.language", "nki/language/__init__.py"),
            ("nki.compiler", "nki/compiler/__init__.py")),
           (("nki", "nki.rst"), ("nki.isa", "nki.isa.rst"),
            ("nki.language", "nki.language.rst"), ("nki.compiler", "nki.compiler.rst")),
           "api_classic.py"),
)


def _show(git_dir: str, rev: str, path: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{rev}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def _commit(git_dir: str, rev: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", f"{rev}^{{commit}}"],
                          check=True, capture_output=True, text=True).stdout.strip()


def _params(fn: ast.FunctionDef) -> list[tuple[str, str, bool]]:
    a = fn.args
    out: list[tuple[str, str, bool]] = []
    pos = a.posonlyargs + a.args
    first_default = len(pos) - len(a.defaults)
    for i, p in enumerate(pos):
        out.append((p.arg, "POSITIONAL", i < first_default))
    if a.vararg is not None:
        out.append((a.vararg.arg, "VAR_POSITIONAL", False))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, "KEYWORD_ONLY", d is None))
    if a.kwarg is not None:
        out.append((a.kwarg.arg, "VAR_KEYWORD", False))
    return out


def _stub_rows(text: str) -> tuple[dict[str, list], set[str]]:
    funcs: dict[str, list] = {}
    names: set[str] = set()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            funcs[node.name] = _params(node)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
    return funcs, {n for n in names if not n.startswith("_") or n == "_TileSize"}


def _autosummary(text: str) -> set[str]:
    out: set[str] = set()
    for block in re.split(r"\.\. autosummary::", text)[1:]:
        for line in block.splitlines()[1:]:
            s = line.strip()
            if not s or s.startswith(":"):
                continue
            if not line.startswith("   "):
                break
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", s):
                out.add(s.split(".")[-1])
    return out


def _section(text: str, label: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, s in enumerate(lines) if s.strip() == f".. _{label}:")
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith(".. _") or lines[i].startswith(".. note::")), len(lines))
    return lines[start:end]


def _alu_rows(text: str) -> list[tuple[str, str, bool, tuple[str, ...]]]:
    rows: list[tuple[str, str, bool, tuple[str, ...]]] = []
    block: list[list[str]] = []

    def flush() -> None:
        label = next((c[0] for c in block if c[0]), "")
        cat = {"Bitvec": "bitvec", "Arithmetic": "arithmetic",
               "Arithmetic Unary": "unary"}.get(label, label.lower())
        for c in block:
            m = re.search(r"``nki\.language\.([a-z_0-9]+)``", c[2])
            if not m:
                continue
            engines = tuple(e.strip().lower() for e in c[4].split("/")) if len(c) > 4 else ()
            rows.append((m.group(1), cat, c[3].strip() == "Y", engines))
        block.clear()

    for line in _section(text, "tbl-aluop"):
        s = line.strip()
        if re.match(r"^\+[-=]{3,}\+", s):          # a full-width border: the group ends
            flush()
        elif s.startswith("|"):
            cells = [c.strip() for c in s.strip("|").split("|")]
            if len(cells) >= 4:      # a content row (a partial border has fewer cells)
                block.append(cells)
    flush()
    seen: set[str] = set()
    return [r for r in rows if not (r[0] in seen or seen.add(r[0]))]   # type: ignore[func-returns-value]


def _act_rows(text: str) -> list[str]:
    out: list[str] = []
    for line in _section(text, "tbl-act-func"):
        m = re.search(r"``nki\.language\.([a-z_0-9]+)``", line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def render(git_dir: str, src: Source) -> str:
    commit = _commit(git_dir, src.rev)
    api = f"Api.{src.api}"
    ver = src.version
    lines = [
        "# ruff: noqa: E501",
        f'"""Generated by ``python -m nkigen.lint.extract``: the documented {src.api.lower()} API '
        'as lint table rows.',
        "",
        "Stage: lint (data). Do not edit by hand; re-run the extractor.",
        f"Source: aws-neuron/aws-neuron-sdk {src.rev} ({commit[:8]}), `{src.root}/` "
        f"(citation key {src.key}).",
        '"""',
        "",
        "from nkigen.lint.table import ActFunc, AluOp, Api, Kind, Name, Param, Signature",
        "",
        "P, K, VP, VK = Kind.POSITIONAL, Kind.KEYWORD_ONLY, Kind.VAR_POSITIONAL, "
        "Kind.VAR_KEYWORD",
        "",
        "SIGNATURES: tuple[Signature, ...] = (",
    ]
    kind_short = {"POSITIONAL": "P", "KEYWORD_ONLY": "K", "VAR_POSITIONAL": "VP",
                  "VAR_KEYWORD": "VK"}
    names_out: list[tuple[str, str, str]] = []
    pages = dict(src.pages)
    for module, rel in src.stubs:
        path = f"{src.root}/{rel}"
        funcs, names = _stub_rows(_show(git_dir, src.rev, path))
        cite = f"{src.key} {path}"
        for fname in sorted(funcs):
            ps = ", ".join(f"Param({n!r}, {kind_short[k]}, {req})" for n, k, req in funcs[fname])
            lines.append(f"    Signature({api}, {module!r}, {fname!r}, ({ps}{',' if ps else ''}),")
            lines.append(f"              {cite + '::' + fname!r}, {ver!r}),")
        for n in sorted(names):
            names_out.append((module, n, f"{cite}"))
        if module in pages:
            ppath = f"{src.root}/{pages[module]}"
            try:
                listed = _autosummary(_show(git_dir, src.rev, ppath))
            except subprocess.CalledProcessError:
                listed = set()
            for n in sorted(listed - set(funcs) - names):
                names_out.append((module, n, f"{src.key} {ppath}"))
    lines.append(")")
    lines.append("")
    lines.append("NAMES: tuple[Name, ...] = (")
    for module, n, cite in names_out:
        lines.append(f"    Name({api}, {module!r}, {n!r}, {cite!r}, {ver!r}),")
    lines.append(")")
    shared = f"{src.root}/nki.api.shared.rst"
    text = _show(git_dir, src.rev, shared)
    lines.append("")
    lines.append("ALU_OPS: tuple[AluOp, ...] = (")
    for name, cat, red, eng in _alu_rows(text):
        lines.append(f"    AluOp({api}, {name!r}, {cat!r}, {red}, {eng!r},")
        lines.append(f"          {src.key + ' ' + shared + ' (tbl-aluop)'!r}, {ver!r}),")
    lines.append(")")
    lines.append("")
    lines.append("ACT_FUNCS: tuple[ActFunc, ...] = (")
    for name in _act_rows(text):
        cite = f"{src.key} {shared} (tbl-act-func)"
        lines.append(f"    ActFunc({api}, {name!r}, {cite!r}, {ver!r}),")
    lines.append(")")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nkigen.lint.extract")
    ap.add_argument("git_dir")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    bad = 0
    for src in SOURCES:
        text = render(args.git_dir, src)
        out = HERE / src.out
        if args.check:
            if not out.exists() or out.read_text() != text:
                print(f"{out}: differs from a fresh extraction", file=sys.stderr)
                bad += 1
        else:
            out.write_text(text)
            print(f"wrote {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
