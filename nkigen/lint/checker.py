"""Static checker of NKI kernel source against the lint table (stage: lint).

Input: Python source text (never executed) and optionally the API generation to check against.
Output: a :class:`LintResult` with one :class:`Finding` per problem, located at the offending
node (``file:line:col``) and worded as rule + actual value + fix; each finding names a rule of
:mod:`nkigen.lint.rules`.

How: ``ast.parse``; import aliases are resolved (``import nki.isa as nisa``,
``from nki import language as nl``, ``from neuronxcc import nki``, ``import numpy as np`` ...);
the dialect is the current ``nki`` API when the file imports it, else the classic
``neuronxcc.nki`` API when it imports that (``api=`` overrides). Every reference to a module
of the API is checked against the documented names, every call of a documented function against
its signature, and the instruction calls against the operator, engine, dtype and memory rules.
Dtype and buffer facts come from ``nl.ndarray``/``nl.zeros``/... allocations bound to a local
name exactly once (or always with the same dtype and buffer) in the enclosing function; where a
fact is not visible the rule needing it stays silent (no guessing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from nkigen.lint import instr, scope
from nkigen.lint.api import SUBMODULES, ApiTable, table
from nkigen.lint.model import (
    ALLOCATORS,
    KERNEL_DECORATORS,
    NKI_VERSION,
    NUMPY_DTYPES,
    NUMPY_OPS,
    ONE_BYTE,
    STRUCT_FIX,
    Alloc,
    Finding,
    LintResult,
    Ref,
    int_literal,
    modules,
    src,
)
from nkigen.lint.rules import RULE_BY_ID
from nkigen.lint.table import Api, Level, Signature

__all__ = ["Finding", "LintResult", "lint_file", "lint_source"]

# nki.language / nki.isa calls that return no tensor (indices, ranges, ids, registers, dtypes)
NOT_TENSORS = frozenset({
    "arange", "mgrid", "ds", "par_dim", "program_id", "num_programs", "program_ndim",
    "affine_range", "sequential_range", "static_range", "spmd_dim", "nc", "device_print",
    "get_nc_version", "get_nc_sub_version", "register_alloc", "tile_size", "no_reorder"})

# --- the checker -----------------------------------------------------------------------------


@dataclass
class _Func:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    kernel: bool              # decorated with nki.jit (or another kernel decorator)
    nki_code: bool = False    # a kernel, or a module-level function a kernel calls
    allocs: dict[str, Alloc] = field(default_factory=dict)


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module, api: Api | None,
                 nki_version: tuple[int, int] = NKI_VERSION) -> None:
        self.path = path
        self.nki_version = nki_version
        self.tree = tree
        self.findings: list[Finding] = []
        self.aliases: dict[str, Ref] = {}
        self.import_nodes: list[tuple[ast.AST, Ref]] = []
        self._collect_imports()
        apis = {r.api for _, r in self.import_nodes if r.api is not None}
        self.override = api
        if api is not None:
            self.api: Api | None = api
        elif Api.NKI in apis:
            self.api = Api.NKI
        elif Api.CLASSIC in apis:
            self.api = Api.CLASSIC
        else:
            self.api = None
        self.funcs: list[_Func] = []
        # functions called by name somewhere in the file: a decorated one is a sub-kernel
        self.called_names = {
            n.func.id if isinstance(n.func, ast.Name) else n.func.attr
            for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, (ast.Name, ast.Attribute))}
        self.scope_depth = 0          # loops/ifs inside the innermost function

    # -- reporting --
    def add(self, node: ast.AST, rule: str, message: str, got: str | None = None,
            fix: str | None = None) -> None:
        r = RULE_BY_ID[rule]
        if self.api is not None and self.api not in r.apis:
            return
        self.findings.append(Finding(self.path, getattr(node, "lineno", 1),
                                     getattr(node, "col_offset", 0) + 1, rule, message, got,
                                     fix or r.fix))

    # -- imports and names --
    def _norm(self, dotted: str) -> Ref | None:
        if dotted == "neuronxcc.nki" or dotted.startswith("neuronxcc.nki."):
            return Ref(Api.CLASSIC, dotted[len("neuronxcc."):])
        if dotted == "nki" or dotted.startswith("nki."):
            return Ref(Api.NKI, dotted)
        if dotted == "numpy" or dotted.startswith("numpy."):
            return Ref(None, dotted)
        if dotted == "neuronxcc":
            return Ref(Api.CLASSIC, "neuronxcc")
        return None

    def _collect_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    full = self._norm(a.name)
                    if full is None:
                        continue
                    if a.asname:
                        self.aliases[a.asname] = full
                    else:
                        head = self._norm(a.name.split(".")[0])
                        if head is not None:
                            self.aliases[a.name.split(".")[0]] = head
                    self.import_nodes.append((node, full))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                base = self._norm(node.module)
                if base is None:
                    continue
                for a in node.names:
                    if a.name == "*":
                        continue
                    ref = self._norm(f"{node.module}.{a.name}")
                    if ref is None:
                        continue
                    self.aliases[a.asname or a.name] = ref
                    self.import_nodes.append((node, ref))

    def resolve(self, node: ast.AST) -> Ref | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is None:
                return None
            return Ref(base.api, f"{base.path}.{node.attr}")
        return None

    def api_of(self, ref: Ref) -> Api | None:
        if ref.api is None:
            return None
        return self.override or ref.api

    def split(self, ref: Ref) -> tuple[str, str] | None:
        """(module, first name in it) of an API reference, e.g. ('nki.isa', 'engine')."""
        api = self.api_of(ref)
        if api is None:
            return None
        mods = modules(api)
        parts = ref.path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            mod = ".".join(parts[:i])
            if mod in mods:
                if parts[i] in SUBMODULES[api] and mod == "nki":
                    continue
                return mod, parts[i]
        return None

    def table_of(self, ref: Ref) -> ApiTable | None:
        api = self.api_of(ref)
        return table(api) if api is not None else None

    def called(self, call: ast.Call) -> tuple[ApiTable, str, str] | None:
        ref = self.resolve(call.func)
        if ref is None:
            return None
        tab = self.table_of(ref)
        mn = self.split(ref)
        if tab is None or mn is None or ref.path.count(".") != mn[0].count(".") + 1:
            return None
        return tab, mn[0], mn[1]

    def op_name(self, node: ast.AST | None) -> str | None:
        """The nl operator an ``op=`` argument names (nl.add, np.add, nki.language.add)."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and node.value is None:
            return "None"
        ref = self.resolve(node)
        if ref is None:
            return None
        if ref.api is None:
            tail = ref.path.split(".", 1)[1] if "." in ref.path else ""
            return NUMPY_OPS.get(tail, f"numpy.{tail}")
        mn = self.split(ref)
        if mn is not None and mn[0] == "nki.language" and ref.path.endswith("." + mn[1]):
            return mn[1]
        return None

    def engine_name(self, node: ast.AST | None) -> str | None:
        if node is None:
            return None
        ref = self.resolve(node)
        if ref is None or ref.api is None:
            return None
        tail = ref.path.split(".")
        if len(tail) >= 2 and tail[-2] == "engine":
            return tail[-1]
        if tail[-1].endswith("_engine"):
            return tail[-1][: -len("_engine")]
        return None

    def dtype_name(self, node: ast.AST | None, func: _Func | None) -> str | None:
        if node is None:
            return None
        if isinstance(node, ast.Attribute) and node.attr == "dtype" and func is not None:
            a = self.fact(node.value, func)
            return a.dtype if a else None
        ref = self.resolve(node)
        if ref is None:
            return None
        tail = ref.path.rsplit(".", 1)[-1]
        if ref.api is None:
            return NUMPY_DTYPES.get(tail)
        mn = self.split(ref)
        if mn and mn[0] == "nki.language" and ref.path.endswith("." + mn[1]):
            return tail
        return None

    def fact(self, node: ast.AST | None, func: _Func | None) -> Alloc | None:
        if func is None or node is None:
            return None
        while isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Name):
            return func.allocs.get(node.id)
        return None

    # -- signatures --
    def bind(self, call: ast.Call, sig: Signature, label: str) -> dict[str, ast.expr]:
        bound: dict[str, ast.expr] = {}
        pos = sig.positional()
        star = any(isinstance(a, ast.Starred) for a in call.args)
        splat = any(k.arg is None for k in call.keywords)
        for i, a in enumerate(call.args):
            if isinstance(a, ast.Starred):
                break
            if i < len(pos):
                bound[pos[i].name] = a
            elif not sig.var_positional:
                kwonly = [p.name for p in sig.params if p.kind.name == "KEYWORD_ONLY"]
                n = len(call.args)
                if kwonly:
                    self.add(a, "sig.keyword-only",
                             f"{label} takes {len(pos)} positional argument(s); "
                             f"{', '.join(kwonly[:6])} are keyword-only",
                             got=f"{n} positional", fix="pass them as name=value")
                else:
                    self.add(a, "sig.positional",
                             f"{label} takes {len(pos)} positional argument(s)",
                             got=f"{n}")
                break
        for k in call.keywords:
            if k.arg is None:
                continue
            p = sig.param(k.arg)
            if k.arg == "mask" and p is None and sig.api is Api.NKI:
                self.add(k.value, "sig.mask", f"{label}: mask= was removed in nki 0.2",
                         got=f"mask={src(k.value)}")
                continue
            if p is None:
                if not sig.var_keyword:
                    names = [q.name for q in sig.params if q.kind.name in
                             ("POSITIONAL", "KEYWORD_ONLY")]
                    self.add(k.value, "sig.unknown-keyword",
                             f"{label} has no parameter '{k.arg}'",
                             got=f"{k.arg}=", fix=f"parameters are: {', '.join(names)}")
                bound.setdefault(k.arg, k.value)
                continue
            if k.arg in bound:
                self.add(k.value, "sig.duplicate", f"{label}: '{k.arg}' is given twice",
                         got=f"positional and {k.arg}=")
                continue
            bound[k.arg] = k.value
        if not star and not splat:
            missing = [p.name for p in sig.params
                       if p.required and p.kind.name in ("POSITIONAL", "KEYWORD_ONLY")
                       and p.name not in bound]
            if missing:
                self.add(call, "sig.missing",
                         f"{label} needs {', '.join(missing)}", got="not given")
        return bound

    # -- traversal --
    def check(self) -> list[Finding]:
        if self.api is None:
            return []
        if self.api is Api.NKI and self.override is None:
            for node, ref in self.import_nodes:
                if ref.api is Api.CLASSIC:
                    self.add(node, "api.classic-import",
                             "a current-API kernel imports the classic namespace",
                             got=f"neuronxcc.{ref.path}" if ref.path != "neuronxcc" else
                             "neuronxcc")
        for node, ref in self.import_nodes:
            if isinstance(node, ast.ImportFrom):
                mn = self.split(ref)
                if mn is not None and ref.path == f"{mn[0]}.{mn[1]}":
                    self.name_rules(node, ref, mn)
        self.kernel_code = self._kernel_code()
        self.visit(self.tree)
        return self.findings

    def cur(self) -> _Func | None:
        return self.funcs[-1] if self.funcs else None

    def in_kernel(self) -> bool:
        return any(f.kernel or f.nki_code for f in self.funcs)

    def _kernel_code(self) -> set[str]:
        """Module-level functions that are kernels or that a kernel calls (transitively): the
        NKI compiler compiles them too (S29 nki/get-started/nki-language-guide.rst)."""
        defs = {n.name: n for n in self.tree.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        todo = [name for name, fn in defs.items() if self._is_kernel(fn)]
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for n in ast.walk(defs[name]):
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) \
                        and n.func.id in defs:
                    todo.append(n.func.id)
        return seen

    def name_rules(self, node: ast.AST, ref: Ref, mn: tuple[str, str]) -> None:
        tab = self.table_of(ref)
        if tab is None:
            return
        mod, name = mn
        short = {"nki.isa": "nisa", "nki.language": "nl"}.get(mod, mod)
        st = tab.status.get((mod, name))
        if st is not None and st.since() > self.nki_version:
            st = None      # deprecated only in a later version than the one targeted
        if st is not None:
            rule = "api.removed" if st.level is Level.ERROR else "api.deprecated"
            word = "removed" if rule == "api.removed" else "deprecated"
            self.add(node, rule, f"{short}.{name} is {word} in {st.version} ({st.source})",
                     got=f"{short}.{name}", fix=f"use {st.use_instead}")
            return
        if tab.api is Api.CLASSIC and (mod, name) == ("nki.language", "static_range"):
            self.add(node, "api.static-range",
                     "nl.static_range unrolls the loop; a debugging fall-back in the classic docs",
                     got="nl.static_range")
            return
        if mod in ("nki", "nki.isa", "nki.language") and not tab.documented(mod, name) \
                and (mod, name) not in tab.status:
            self.add(node, "api.unknown-name",
                     f"{short}.{name} is not in the documented {tab.api.value} API",
                     got=f"{short}.{name}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        ref = self.resolve(node)
        base = self.resolve(node.value)
        if ref is not None and base is not None:
            mn = self.split(ref)
            if mn is not None and ref.path == f"{mn[0]}.{mn[1]}":
                self.name_rules(node, ref, mn)
        self.generic_visit(node)

    def _is_kernel(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        for d in fn.decorator_list:
            target = d.func if isinstance(d, ast.Call) else d
            ref = self.resolve(target)
            if ref is None or ref.api is None:
                continue
            mn = self.split(ref)
            if mn and mn[0] == "nki" and mn[1] in KERNEL_DECORATORS:
                return True
        return False

    def _allocs(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, parent: _Func | None
                ) -> dict[str, Alloc]:
        seen: dict[str, list[Alloc | None]] = {}
        tmp = _Func(fn, False, allocs=dict(parent.allocs) if parent else {})

        def body_nodes(n: ast.AST) -> Iterator[ast.AST]:
            for c in ast.iter_child_nodes(n):
                if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
                    continue
                yield c
                yield from body_nodes(c)

        def bind(name: str, a: Alloc | None) -> None:
            seen.setdefault(name, []).append(a)

        for arg in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
            bind(arg.arg, None)
        for n in body_nodes(fn):
            if isinstance(n, ast.Assign):
                fact = self._alloc_of(n.value, tmp)
                for t in n.targets:
                    for name in _names(t):
                        bind(name, fact if isinstance(t, ast.Name) else None)
            elif isinstance(n, (ast.AnnAssign, ast.NamedExpr)) and isinstance(n.target,
                                                                              ast.Name):
                bind(n.target.id, self._alloc_of(n.value, tmp) if n.value else None)
            elif isinstance(n, (ast.For, ast.comprehension)):
                for name in _names(n.target):
                    bind(name, None)
            elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                for name in _names(n.optional_vars):
                    bind(name, None)
        out: dict[str, Alloc] = {}
        for name, facts in seen.items():
            first = facts[0]
            if first is not None and all(f == first for f in facts):
                out[name] = first
        for name, inherited in (parent.allocs if parent else {}).items():
            if name not in seen:
                out[name] = inherited
        return out

    def _alloc_of(self, value: ast.AST | None, func: _Func) -> Alloc | None:
        if not isinstance(value, ast.Call):
            return None
        got = self.called(value)
        if got is None:
            return None
        tab, mod, name = got
        if mod != "nki.language" or name not in ALLOCATORS:
            return None
        sig = tab.signature(mod, name)
        if sig is None:
            return None
        args = _quiet_bind(value, sig)
        dtype = self.dtype_name(args.get("dtype"), func)
        buf_node = args.get("buffer")
        if name.endswith("_like"):
            src = self.fact(args.get("x") or (value.args[0] if value.args else None), func)
            if dtype is None and args.get("dtype") is None and src is not None:
                dtype = src.dtype
            if buf_node is None:
                return Alloc(dtype, src.buffer if src else None, name)
        return Alloc(dtype, self.buffer_name(buf_node), name)

    def buffer_name(self, node: ast.AST | None) -> str | None:
        if node is None:
            return "sbuf"     # SH nki.language.ndarray / S25: sbuf is the default buffer
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return repr(node.value)
        ref = self.resolve(node)
        if ref is None:
            return None
        mn = self.split(ref)
        if mn and mn[0] == "nki.language" and ref.path.endswith("." + mn[1]):
            return mn[1]
        return None

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for dflt in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(dflt)
        kernel = self._is_kernel(node)
        parent = self.cur()
        f = _Func(node, kernel, parent is None and node.name in self.kernel_code)
        f.allocs = self._allocs(node, parent)
        if kernel and self.api is Api.NKI:
            if node.args.kwonlyargs:
                self.add(node, "struct.kw-only-kernel",
                         f"kernel {node.name} has keyword-only parameters",
                         got=", ".join(a.arg for a in node.args.kwonlyargs))
            for dflt in node.args.defaults + [d for d in node.args.kw_defaults if d]:
                if isinstance(dflt, ast.List):
                    self.add(dflt, "struct.list-argument",
                             f"kernel {node.name} has a list default argument",
                             got=src(dflt))
        elif self.in_kernel() and self.api is Api.NKI and isinstance(node,
                                                                   ast.AsyncFunctionDef):
            self.add(node, "struct.statement", "async functions are not NKI", got="async def")
        if self.api is Api.CLASSIC and (kernel or f.nki_code):
            for use, name in scope.out_of_scope_uses(node, self._creates_tensor):
                self.add(use, "scope.tensor-out-of-scope",
                         f"tensor '{name}' is used outside the block that created it",
                         got=f"'{name}' created inside an if/for/while block")
        self.funcs.append(f)
        depth = self.scope_depth
        self.scope_depth = 0
        for s in node.body:
            self.visit(s)
        self.scope_depth = depth
        self.funcs.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _loop(self, node: ast.AST) -> None:
        self.scope_depth += 1
        self.generic_visit(node)
        self.scope_depth -= 1

    visit_For = visit_While = _loop  # type: ignore[assignment]

    def _struct(self, node: ast.AST, what: str) -> None:
        if not self.in_kernel():
            return
        if self.api is Api.NKI:
            self.add(node, "struct.statement", f"{what} inside a kernel", got=what,
                     fix=STRUCT_FIX.get(what))
        elif what in ("del", "try"):
            self.add(node, "struct.statement-classic", f"{what} inside a classic kernel",
                     got=what)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._struct(node, "del")
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._struct(node, "raise")
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        self._struct(node, "try")
        self.generic_visit(node)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_Global(self, node: ast.Global) -> None:
        self._struct(node, "global")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._struct(node, "nonlocal")

    def visit_Yield(self, node: ast.Yield) -> None:
        self._struct(node, "yield")
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._struct(node, "lambda")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        # annotations are types for the reader and tools, not kernel code: not checked
        if node.value is not None:
            self._isa_result(node.value, node.target)
            self.visit(node.value)
        self.visit(node.target)

    def visit_arg(self, node: ast.arg) -> None:
        return    # an annotation only

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Mult) and self.api is Api.CLASSIC:
            for lit, other in ((node.left, node.right), (node.right, node.left)):
                if int_literal(lit) == 0 and self._has_arange(other):
                    self.add(node, "index.zero-stride", "0 * nl.arange(...) in an index",
                             got=src(node))
                    break
        self.generic_visit(node)

    def _creates_tensor(self, call: ast.Call) -> bool:
        """A call of the API that returns a tensor (not an index, range or id)."""
        got = self.called(call)
        if got is None:
            return False
        _, mod, name = got
        return mod in ("nki.language", "nki.isa") and name not in NOT_TENSORS

    def _has_par_dim(self, node: ast.AST) -> bool:
        """A classic shape naming its partition dimension with nl.par_dim (block dims)."""
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                got = self.called(n)
                if got is not None and got[1:] == ("nki.language", "par_dim"):
                    return True
        return False

    def _has_arange(self, node: ast.AST) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                got = self.called(n)
                if got is not None and got[1:] == ("nki.language", "arange"):
                    return True
        return False

    def visit_Compare(self, node: ast.Compare) -> None:
        if self.in_kernel() and self.api is Api.NKI:
            sides = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                if any(isinstance(x, ast.Constant) and x.value is None
                       for x in (sides[i], sides[i + 1])):
                    continue
                if isinstance(op, (ast.Is, ast.IsNot)):
                    word = "is" if isinstance(op, ast.Is) else "is not"
                    self.add(node, "struct.is-operator", f"'{word}' inside a kernel",
                             got=src(node), fix="use == / !=")
                    break
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        f = self.cur()
        if f is not None and f.kernel and node.value is not None and \
                f.node.name not in self.called_names and len(self.funcs) == 1:
            vals = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for v in vals:
                a = self.fact(v, f) if isinstance(v, ast.Name) else None
                # an SBUF/PSUM tile returned may be a sub-kernel's result (called from
                # another file): only HBM kinds other than shared_hbm are certain errors
                if a is not None and a.buffer is not None and a.buffer != "shared_hbm" \
                        and a.buffer not in ("sbuf", "psum"):
                    self.add(v, "mem.output-shared-hbm",
                             f"kernel output '{ast.unparse(v)}' is not in shared HBM",
                             got=f"buffer={a.buffer}")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._isa_result(node.value, node.targets[0] if node.targets else None)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._isa_result(node.value, node.target)
        self.generic_visit(node)

    def _isa_result(self, value: ast.AST, target: ast.AST | None) -> None:
        if not isinstance(value, ast.Call):
            return
        got = self.called(value)
        if got is None:
            return
        tab, mod, name = got
        sig = tab.signature(mod, name)
        if tab.api is Api.NKI and mod == "nki.isa" and sig is not None and sig.params \
                and sig.params[0].name == "dst":
            lhs = src(target) if target is not None else "?"
            self.add(value, "sig.isa-result", f"nisa.{name} result used as a value",
                     got=f"{lhs} = nisa.{name}(...)")
        if mod == "nki.isa" and name == "dma_transpose" and target is not None:
            a = self.fact(target, self.cur())
            if a is not None and a.dtype in ONE_BYTE:
                self.add(value, "dtype.dma-transpose-size",
                         "nisa.dma_transpose: DMA transpose supports 2- and 4-byte dtypes only",
                         got=f"destination {src(target)} is {a.dtype}")

    def visit_Call(self, node: ast.Call) -> None:
        got = self.called(node)
        if got is not None:
            tab, mod, name = got
            sig = tab.signature(mod, name)
            short = {"nki.isa": "nisa", "nki.language": "nl"}.get(mod, mod)
            label = f"{short}.{name}"
            if sig is not None:
                args = self.bind(node, sig, label)
                instr.call_rules(self, node, tab, mod, name, label, args)
        self.generic_visit(node)

    # -- instruction rules --
def _names(t: ast.AST) -> Iterator[str]:
    if isinstance(t, ast.Name):
        yield t.id
    elif isinstance(t, (ast.Tuple, ast.List)):
        for e in t.elts:
            yield from _names(e)
    elif isinstance(t, ast.Starred):
        yield from _names(t.value)


def _quiet_bind(call: ast.Call, sig: Signature) -> dict[str, ast.expr]:
    out: dict[str, ast.expr] = {}
    pos = sig.positional()
    for i, a in enumerate(call.args):
        if isinstance(a, ast.Starred) or i >= len(pos):
            break
        out[pos[i].name] = a
    for k in call.keywords:
        if k.arg is not None:
            out.setdefault(k.arg, k.value)
    return out


def lint_source(text: str, path: str = "<string>", api: Api | None = None,
                nki_version: tuple[int, int] = NKI_VERSION) -> LintResult:
    """Lint one kernel file's source; ``api`` forces the API generation (else detected);
    ``nki_version`` is the targeted current-API version (names deprecated later are not
    flagged)."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        f = Finding(path, e.lineno or 1, (e.offset or 0) or 1, "syntax",
                    f"invalid Python: {e.msg}", None, "fix the syntax error")
        return LintResult(path, api, (f,))
    except (ValueError, RecursionError, MemoryError) as e:
        return LintResult(path, api, (_too_deep(path, e),))
    c = _Checker(path, tree, api, nki_version)
    try:
        found = c.check()
    except (RecursionError, MemoryError) as e:
        return LintResult(path, c.api, (_too_deep(path, e),))
    uniq = {(f.line, f.col, f.rule, f.message): f for f in found}
    return LintResult(path, c.api, tuple(uniq[k] for k in sorted(uniq)))


def _too_deep(path: str, e: BaseException) -> Finding:
    what = "nested too deeply" if not isinstance(e, ValueError) else str(e)
    return Finding(path, 1, 1, "syntax", f"the file can not be linted: {what}", None,
                   "simplify the expression nesting")


def lint_file(path: str, api: Api | None = None,
              nki_version: tuple[int, int] = NKI_VERSION) -> LintResult:
    with open(path, encoding="utf-8-sig") as fh:     # a UTF-8 BOM is valid Python source
        return lint_source(fh.read(), path, api, nki_version)
