"""Stage analyze (report): :class:`Analysis` -> the text ``nkigen explain`` prints.

Input: an analysis. Output: aligned plain-text sections: sizes and constraints, params, index
extents with their source, each statement's access maps, the bounds and exactly-once proofs, and
the tiling (schedule tiles or role defaults) with per-tile maps and tile counts. Deterministic.
"""

from __future__ import annotations

import textwrap

from nkigen.analysis.model import Analysis, SizeInfo
from nkigen.analysis.printing import expr_text
from nkigen.analysis.schedule import default_tiles, statement_roles
from nkigen.analysis.tiling import tile_maps


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return [f"{indent}(none)"]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    return [indent + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
            for r in rows]


def _constraints(s: SizeInfo) -> str:
    parts = []
    if s.multiple_of:
        parts.append(f"multiple_of {s.multiple_of}")
    parts.append(f"min {s.min}")
    if s.max is not None:
        parts.append(f"max {s.max}")
    return ", ".join(parts)


def format_analysis(a: Analysis) -> str:
    spec = a.spec
    out: list[str] = []
    head = f"kernel {spec.name}"
    if spec.path:
        head += f"  ({spec.path})"
    out.append(head)
    out.append(f"target {a.target}" + ("" if spec.target else " (default)"))
    if spec.doc:
        out.append(f"doc    {spec.doc}")

    out += ["", "sizes"]
    rows = []
    for s in a.sizes:
        if s.derived:
            how = f"derived = {expr_text(s.value)}"
            if s.resolved is not None and s.resolved != s.value:
                how += f"  (= {expr_text(s.resolved)})"
        else:
            how = "bound from input shapes"
        rows.append([s.name, how, _constraints(s)])
    out += _table(rows)
    if a.derived_order:
        out.append(f"  evaluation order of derived sizes: {', '.join(a.derived_order)}")

    out += ["", "params"]
    out += _table([[p.name, "=", str(p.value)] for p in spec.params])

    out += ["", "tensors"]
    out += _table([[t.name, t.role.value, f"[{', '.join(str(d) for d in t.shape)}]",
                    t.dtype.value] for t in spec.tensors])

    out += ["", "index extents"]
    out += _table([[e.name, f"0 .. {e.extent} - 1", f"{e.source.value}: {e.where}"]
                   for e in a.extent_info])

    tiles = default_tiles(dict(a.roles), spec, dict(a.extents))
    for sa in a.statements:
        st = sa.statement
        main = "  (main statement)" if st.position == a.main_statement else ""
        out += ["", f"statement {st.position}: {st.text}{main}"]
        loops = []
        own_roles = statement_roles(sa)
        for li in sa.loop_indices:
            tag = li.kind.value + (f" #{li.reduce_ordinal} {li.reduce.op.value}"
                                   if li.reduce is not None else "")
            role = own_roles.get(li.name)
            loops.append([li.name, tag, f"extent {li.extent}",
                          f"role {role.value}" if role else ""])
        out.append("  loops (outer to inner):")
        out += _table(loops, "    ")
        out.append("  access maps (coordinates = matrix @ loops + offset):")
        rows = []
        for m in sa.accesses:
            cols = ", ".join(m.columns)
            mat = "; ".join(" ".join(str(d.coeff(c)) for c in m.columns) for d in m.dims)
            off = ", ".join(str(d.const) for d in m.dims)
            rows.append([("lhs " if m.is_lhs else "rhs ") + m.text,
                         f"shape [{', '.join(map(str, m.shape))}]",
                         f"A[{cols}] = [{mat}]", f"b = [{off}]"])
        out += _table(rows, "    ")
        out.append("  bounds proofs:")
        for p in sa.bounds:
            status = "proven" if p.proven else "NOT PROVEN"
            steps = [x for x in p.argument if x.strip() != "0 >= 0"]
            if p.proven and not any(x.startswith("  ") for x in steps):
                corners = "; ".join(x.replace(" proven", "") for x in steps)
                out.append(f"    {p.access} dim {p.dim}: {p.condition}  proven ({corners})")
                continue
            out.append(f"    {p.access} dim {p.dim}: {p.condition}  {status}")
            out += [f"      {x}" for x in steps]
        once = sa.exactly_once
        out.append(f"  exactly once ({'proven' if once.proven else 'NOT PROVEN'}):")
        out += textwrap.wrap(once.argument, 100, initial_indent="    ",
                             subsequent_indent="      ")

        st_tiles = {li.name: tiles[li.name] for li in sa.loop_indices if li.name in tiles}
        tm = tile_maps(a, st.position, st_tiles)
        given = {n for n, _ in spec.schedule.tiles}
        out.append("  tiling (schedule tiles, else 128 partition/stationary, 512 free, 1 batch):")
        rows = []
        for t in tm.indices:
            src = "schedule" if t.name in given else "default"
            split = f"{t.name} = {t.tile}*{t.outer} + {t.inner}" if t.tile > 1 \
                else f"{t.name} = {t.outer} ({t.inner} = 0)"
            rows.append([split, f"tile {t.tile} ({src})",
                         f"tiles {t.count}",
                         f"last tile {t.extent} - {t.tile}*({t.count} - 1) (partial)"
                         if t.partial else "exact tiles"])
        out += _table(rows, "    ")
        out.append("    per-tile maps:")
        out += _table([[ta.map.text, "->", ta.text] for ta in tm.accesses], "      ")
    return "\n".join(out) + "\n"
