"""Classic block scoping of tensors (stage: lint): a tensor created inside an if/else/for/while
block may not be used after that block (S25 general/nki/api/nki.errors.rst,
err_local_variable_used_out_of_scope).

Input: a kernel function and a predicate telling which calls create tensors. Output:
``(use node, name)`` pairs, one per read of a block-local tensor after its block. Only names
bound by a tensor-creating call inside a block, and not bound before it in the enclosing
block, are tracked; a re-binding after the block clears them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

BLOCKS = (ast.For, ast.While)


def _stmts_of(node: ast.stmt) -> list[list[ast.stmt]]:
    out = []
    for field in ("body", "orelse", "finalbody"):
        v = getattr(node, field, None)
        if v:
            out.append(v)
    for h in getattr(node, "handlers", []) or []:
        out.append(h.body)
    return out


def _walk_no_defs(node: ast.AST) -> Iterator[ast.AST]:
    for c in ast.iter_child_nodes(node):
        if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield c
        yield from _walk_no_defs(c)


def _bound(node: ast.AST) -> set[str]:
    """Names a statement binds at its own level (targets of assignments, loops, with)."""
    out: set[str] = set()
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
        targets = [node.target]
    elif isinstance(node, ast.With):
        targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
    for t in targets:
        for n in ast.walk(t):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                out.add(n.id)
    return out


def _tensor_bindings(block: ast.stmt, creates: Callable[[ast.Call], bool]) -> set[str]:
    """Names bound anywhere inside a block's bodies by ``name = <tensor-creating call>``."""
    out: set[str] = set()
    for n in _walk_no_defs(block):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and creates(n.value):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    out.add(t.id)
    return out


def out_of_scope_uses(fn: ast.FunctionDef | ast.AsyncFunctionDef,
                      creates: Callable[[ast.Call], bool]) -> list[tuple[ast.Name, str]]:
    params = {a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs}
    found: list[tuple[ast.Name, str]] = []
    _scan(fn.body, set(params), creates, found)
    return found


def _scan(stmts: list[ast.stmt], defined: set[str], creates: Callable[[ast.Call], bool],
          found: list[tuple[ast.Name, str]]) -> None:
    defined = set(defined)
    for i, st in enumerate(stmts):
        defined |= _bound(st)
        if isinstance(st, BLOCKS):
            local = _tensor_bindings(st, creates) - defined
            if local:
                for use in _uses(stmts[i + 1:], local):
                    found.append((use, use.id))
            inner = defined | _bound(st)
            for body in _stmts_of(st):
                _scan(body, inner, creates, found)


def _loads(node: ast.AST, names: set[str]) -> Iterator[ast.Name]:
    for n in [node, *_walk_no_defs(node)]:
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in names:
            yield n


def _uses(stmts: list[ast.stmt], names: set[str]) -> list[ast.Name]:
    """Reads of ``names`` in ``stmts`` (in order) that no earlier binding in the same flow
    shadows; each name is reported once."""
    names = set(names)
    out: list[ast.Name] = []
    for st in stmts:
        if not names:
            break
        if isinstance(st, (ast.For, ast.While, ast.If, ast.With, ast.Try)):
            head = [getattr(st, f) for f in ("iter", "test") if getattr(st, f, None)]
            head += [i.context_expr for i in getattr(st, "items", [])]
            for h in head:
                for n in _loads(h, names):
                    out.append(n)
                    names.discard(n.id)
            inner = names - _bound(st)
            for body in _stmts_of(st):
                for n in _uses(body, inner):
                    if n.id in names:
                        out.append(n)
                        names.discard(n.id)
            # a binding inside the block does not shadow the name for what follows
            continue
        value = [st.value] if isinstance(st, (ast.Assign, ast.AugAssign, ast.AnnAssign)) \
            and st.value is not None else [st]
        for v in value:
            for n in _loads(v, names):
                out.append(n)
                names.discard(n.id)
        if isinstance(st, ast.AugAssign):
            for n in _loads(st.target, names):
                out.append(n)
                names.discard(n.id)
        names -= _bound(st)
    return out
