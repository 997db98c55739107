"""JSON Schema validation with human, located messages (stage: load, second half).

Input: a positioned :class:`~nkigen.frontend.yamlpos.Document`. Output: a list of
:class:`~nkigen.diagnostics.Diagnostic` s, one per problem, *all* problems of the file at once,
each at the position of the offending node (a missing key: the position of its parent mapping;
an unknown or badly named key: the position of the key).

jsonschema's own messages are replaced by rule + got + fix wording, chosen by registries keyed on
the failing keyword and on the field path, not by if-chains over message strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from functools import cache

import jsonschema
from jsonschema.exceptions import ValidationError

from nkigen.diagnostics import Diagnostic, by_position, unique
from nkigen.frontend.names import suggest
from nkigen.frontend.yamlpos import Document, Path
from nkigen.schema import kernel_schema

DTYPES = "float32, bfloat16, float16, float8_e4m3, float8_e5m2, int8, uint8, int32"

# field-path pattern -> fix (first match wins; '*' matches one path component or more)
FIXES: tuple[tuple[str, str], ...] = (
    ("nkigen", "write 'nkigen: 1' (the only spec format version)"),
    ("name", "use lower-case letters, digits and '_' (at most 64), e.g. 'matmul_bias'"),
    ("doc", "write the description as one string"),
    ("bound_note", "write the reason as one non-empty string"),
    ("target", "use trn1 or trn2, or leave it out"),
    ("sizes.*.multiple_of", "use e.g. 128"),
    ("sizes.*.min", "use a positive integer, e.g. 1"),
    ("sizes.*.max", "use a positive integer, e.g. 16384"),
    ("sizes.*.value", "use an integer or a quoted expression such as \"(H - R) // S + 1\""),
    ("sizes.*", "write e.g. 'M: {multiple_of: 128}', 'M: {value: 64}' (fixed) or 'M: {}'"),
    ("sizes", "write a mapping of size names, e.g. 'sizes: {M: {multiple_of: 128}}'"),
    ("params.*", "write a number, e.g. 'alpha: 0.5'"),
    ("params", "write a mapping of names to numbers, e.g. 'params: {alpha: 0.5}'"),
    ("*.shape.*", "use a size name (M), a positive integer, or a quoted expression (\"H * 2\")"),
    ("*.shape", "write e.g. 'shape: [M, K]' (rank 1 to 5)"),
    ("*.dtype", f"use one of {DTYPES}"),
    ("inputs.*", "write e.g. '{shape: [M, K], dtype: bfloat16}'"),
    ("inputs", "write e.g. 'inputs: {a: {shape: [M, K], dtype: bfloat16}}'"),
    ("outputs", "write e.g. 'outputs: {c: {shape: [M, N], dtype: float32}}'"),
    ("outputs.*.initial", "name an input of the recurrence's start shape, e.g. 'initial: h0', "
                          "or give a number, e.g. 'initial: 0.0'"),
    ("outputs.*", "write e.g. '{shape: [M, N], dtype: float32}'"),
    ("temps.*", "write e.g. '{shape: [M, N], dtype: float32}'"),
    ("compute.*", "write one statement per item, e.g. 'c[m, n] += a[m, k] * b[k, n]'"),
    ("compute", "write a list of statements, e.g. '- c[m, n] += a[m, k] * b[k, n]'"),
    ("ranges.*", "use a positive integer or a quoted size expression, e.g. R"),
    ("ranges", "write a mapping of index names to extents, e.g. 'ranges: {r: 3}'"),
    ("schedule.tiles.*", "use e.g. 128"),
    ("schedule.tiles", "write a mapping of index names to tile sizes, e.g. "
                       "'tiles: {m: 128, n: 512}'"),
    ("schedule.block.*", "use e.g. 2"),
    ("schedule.block", "write a mapping of index names to tiles per block, e.g. "
                       "'block: {n: 2}'"),
    ("schedule.order.*", "list index names, outermost first, e.g. [m, n, k]"),
    ("schedule.order", "write e.g. 'order: [m, n, k]'"),
    ("schedule.buffers", "use 1 to 4 (2 overlaps DMA with compute)"),
    ("schedule", "write 'schedule: auto' or e.g. 'schedule: {tiles: {m: 128}}'"),
    ("tests.cases.*.*", "use a positive integer"),
    ("tests.cases.*", "write e.g. '{M: 256, K: 384}'"),
    ("tests.cases", "write a list of size assignments, e.g. 'cases: [{M: 256, K: 384}]'"),
    ("tests.tolerance.*", "use a non-negative number, e.g. 1.0e-2"),
    ("tests.tolerance", "write e.g. 'tolerance: {rtol: 1.0e-2, atol: 1.0e-3}'"),
    ("tests.seed", "use a non-negative integer, e.g. 0"),
    ("tests.inputs.*.dist", "use normal, uniform, integers, positive, onehot, arange or causal"),
    ("tests.inputs.*.std", "use a positive number, e.g. 1.0"),
    ("tests.inputs.*",
     "write '{dist: normal, mean: 0, std: 1}' or '{dist: uniform, low: 0, high: 1}'"),
    ("tests.inputs", "write a mapping of input names to distributions, e.g. "
                     "'inputs: {x: {dist: uniform, low: 0, high: 1}}'"),
    ("tests", "write e.g. 'tests: {cases: [{M: 256}]}'"),
)

# field-path pattern -> what the value must be, when several forms are allowed (anyOf)
FORMS: tuple[tuple[str, str], ...] = (
    ("*.shape.*", "must be a size name, a positive integer or a quoted size expression"),
    ("sizes.*.value", "must be a positive integer or a quoted size expression"),
    ("ranges.*", "must be a positive integer or a quoted size expression"),
    ("schedule", "must be 'auto' or a mapping of tiling hints (tiles, order, block, buffers)"),
)

# parent-path pattern -> what the keys of that mapping must look like (propertyNames)
KEY_RULES: tuple[tuple[str, str, str], ...] = (
    ("sizes", "size names are upper-case identifiers (^[A-Z][A-Za-z0-9_]*$)", "rename it, e.g. M"),
    ("tests.cases.*", "size names are upper-case identifiers", "name a size, e.g. M"),
    ("ranges", "index names are lower-case identifiers", "rename it, e.g. r"),
    ("schedule.*", "index names are lower-case identifiers", "name an index, e.g. m"),
    ("*", "names are identifiers (letters, digits, '_'; at most 64)", "rename it, e.g. x"),
)

_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "empty",
}


def field_name(path: Iterable[str | int]) -> str:
    """A node's path as users read it: ``tests.cases[0].M``, ``inputs.a.shape[1]``."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.removeprefix(".")


def show(value: object) -> str:
    """A value as the user wrote it, briefly."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        s = value if len(value) <= 40 else value[:37] + "..."
        return repr(s)
    return repr(value)


def _lookup(table: Iterable[tuple[str, ...]], fieldpath: str) -> tuple[str, ...] | None:
    dotted = re.sub(r"\[(\d+)\]", r".\1", fieldpath)     # patterns use a.0.b for a[0].b
    for row in table:
        if fnmatchcase(dotted, row[0]):
            return row[1:]
    return None


def fix_for(fieldpath: str) -> str | None:
    hit = _lookup(FIXES, fieldpath)
    return hit[0] if hit else None


def _is_posint(schema: object) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "integer" \
        and schema.get("minimum") == 1 and "maximum" not in schema


# ---- one rule per failing keyword ---------------------------------------------------------

Rule = Callable[[ValidationError, Document, Path], list[Diagnostic]]


def _diag(doc: Document, path: Path, rule: str, got: object, fix: str | None = None,
          key: bool = False) -> Diagnostic:
    loc = doc.key_loc(path) if key else doc.loc(path)
    fld = field_name(path)
    return Diagnostic(loc, fld, rule, None if got is None else str(got), fix or fix_for(fld))


def _required(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    present = e.instance if isinstance(e.instance, dict) else {}
    out = []
    for name in e.validator_value:
        if name not in present:
            fld = field_name((*path, name))
            out.append(Diagnostic(doc.loc(path), fld, "required field is missing", None,
                                  fix_for(fld) or f"add '{name}:'"))
    return out


def _additional(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    allowed = sorted(e.schema.get("properties", {}))
    out = []
    for key in e.instance:
        if key in allowed:
            continue
        close = suggest(key, allowed)
        fix = f"did you mean '{close}'?" if close else f"allowed here: {', '.join(allowed)}"
        out.append(_diag(doc, (*path, key), "unknown field", repr(key), fix, key=True))
    return out


def _property_names(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    key = e.instance
    parent = field_name(path)
    rule, fix = _lookup(KEY_RULES, parent) or ("bad name", None)
    if e.validator == "maxLength":
        rule, fix = "names are at most 64 characters", "use a shorter name"
    return [_diag(doc, (*path, key), rule, repr(key), fix, key=True)]


def _type(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    if _is_posint(e.schema):
        return [_diag(doc, path, "must be a positive integer", show(e.instance))]
    types = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
    want = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in types)
    return [_diag(doc, path, f"must be {want}", show(e.instance))]


def _const(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    return [_diag(doc, path, f"must be {show(e.validator_value)}", show(e.instance))]


def _enum(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    choices = [str(c) for c in e.validator_value]
    close = suggest(str(e.instance), choices) if isinstance(e.instance, str) else None
    fix = f"did you mean '{close}'?" if close else None
    return [_diag(doc, path, f"must be one of {', '.join(choices)}", show(e.instance), fix)]


def _bound(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    if _is_posint(e.schema):
        return [_diag(doc, path, "must be a positive integer", show(e.instance))]
    words = {"minimum": "at least", "maximum": "at most",
             "exclusiveMinimum": "greater than", "exclusiveMaximum": "less than"}
    rule = f"must be {words[e.validator]} {e.validator_value}"
    return [_diag(doc, path, rule, show(e.instance))]


def _pattern(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    fld = field_name(path)
    if fld == "name":
        rule = "kernel name must be a lower-case identifier (^[a-z_][a-z0-9_]*$)"
    elif fld.startswith("schedule.order"):
        rule = "index names are lower-case identifiers"
    else:
        rule = f"must match {e.validator_value}"
    return [_diag(doc, path, rule, show(e.instance))]


def _length(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    unit = "items" if e.validator in ("minItems", "maxItems") else "characters"
    unit = "entries" if e.validator in ("minProperties", "maxProperties") else unit
    word = "at least" if e.validator.startswith("min") else "at most"
    n = e.validator_value
    if isinstance(e.instance, (list, dict, str)):
        got = f"{len(e.instance)} {unit}"
    else:
        got = show(e.instance)
    if e.validator in ("minLength", "minItems", "minProperties") and n == 1:
        empty = {"minLength": "''", "minItems": "an empty list", "minProperties": "{}"}
        return [_diag(doc, path, "must not be empty", empty[e.validator])]
    return [_diag(doc, path, f"must have {word} {n} {unit}", got)]


def _any_of(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    fld = field_name(path)
    forms = _lookup(FORMS, fld)
    branches: dict[int, list[ValidationError]] = {}
    for sub in e.context or ():
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    applicable = [
        errs for errs in branches.values()
        if not any(not s.relative_path and s.validator in ("type", "const", "enum")
                   for s in errs)
    ]
    if len(applicable) == 1 and (not forms or isinstance(e.instance, (dict, list))):
        out: list[Diagnostic] = []
        for sub in applicable[0]:
            out.extend(convert(sub, doc))
        return out
    rule = forms[0] if forms else "does not match any allowed form"
    return [_diag(doc, path, rule, show(e.instance))]


def _excluded(e: ValidationError, doc: Document, path: Path) -> list[Diagnostic]:
    """``properties: {x: false}`` under if/then. jsonschema reports such an error at the
    *parent* mapping, so find the excluded keys from the schema."""
    node: object = kernel_schema()
    for p in e.absolute_schema_path:
        node = node[p]  # type: ignore[index]
    parent: object = doc.data
    for p in path:
        parent = parent[p]  # type: ignore[index]
    if not isinstance(parent, dict) or not isinstance(node, dict):
        return [_diag(doc, path, "field not allowed here", show(e.instance))]
    why = f" with dist: {parent['dist']}" if "dist" in parent else ""
    return [_diag(doc, (*path, k), f"field not allowed here{why}", repr(k),
                  fix_for(field_name(path)), key=True)
            for k, v in node.items() if v is False and k in parent]


RULES: dict[str, Rule] = {
    "required": _required,
    "additionalProperties": _additional,
    "type": _type,
    "const": _const,
    "enum": _enum,
    "minimum": _bound,
    "maximum": _bound,
    "exclusiveMinimum": _bound,
    "exclusiveMaximum": _bound,
    "pattern": _pattern,
    "minLength": _length,
    "maxLength": _length,
    "minItems": _length,
    "maxItems": _length,
    "minProperties": _length,
    "maxProperties": _length,
    "anyOf": _any_of,
    "oneOf": _any_of,
}


def convert(e: ValidationError, doc: Document) -> list[Diagnostic]:
    """One jsonschema error to located diagnostics."""
    path: Path = tuple(e.absolute_path)
    if "propertyNames" in e.absolute_schema_path:
        return _property_names(e, doc, path)
    if e.schema is False:                     # a field excluded by a conditional (if/then)
        return _excluded(e, doc, path)
    rule = RULES.get(str(e.validator))
    if rule is None:
        return [_diag(doc, path, f"is not valid ({e.validator})", show(e.instance))]
    return rule(e, doc, path)


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(kernel_schema())


MAX_SIZE = 2 ** 31 - 1     # sizes, shape entries, ranges, tile and block hints, case values
MAX_INT64 = 2 ** 63 - 1    # integer params (substituted into index expressions)

# field-path patterns of integer fields that hold a size (or a count of elements)
SIZE_FIELDS = ("sizes.*.multiple_of", "sizes.*.min", "sizes.*.max", "sizes.*.value",
               "*.shape.*", "ranges.*", "schedule.tiles.*", "schedule.block.*", "tests.cases.*.*")
# field-path patterns of number fields (int or float) that must convert to a finite float64
NUMBER_FIELDS = ("params.*", "tests.tolerance.*", "tests.inputs.*.*")


def _matches(fieldpath: str, patterns: tuple[str, ...]) -> bool:
    dotted = re.sub(r"\[(\d+)\]", r".\1", fieldpath)
    return any(fnmatchcase(dotted, p) for p in patterns)


def _unrepresentable(doc: Document) -> list[Diagnostic]:
    """Numbers no later stage can handle: inf and nan (JSON Schema's "number" admits them),
    sizes beyond 2**31-1, integer params beyond int64, integers beyond float64's range."""
    out = []
    for path in doc.locs:
        node: object = doc.data
        for p in path:
            node = node[p]  # type: ignore[index]
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            continue
        fld = field_name(path)
        if isinstance(node, float) and not math.isfinite(node):
            out.append(_diag(doc, path, "must be a finite number", show(node),
                             fix_for(fld) or "write an ordinary number"))
        elif _matches(fld, SIZE_FIELDS) and node > MAX_SIZE:
            got = _short(node) if isinstance(node, int) else show(node)
            out.append(_diag(doc, path, f"must be at most {MAX_SIZE} (2**31-1)", got,
                             "use a smaller value"))
        elif _matches(fld, NUMBER_FIELDS) and isinstance(node, int):
            if fld.startswith("params.") and abs(node) > MAX_INT64:
                out.append(_diag(doc, path, "an integer param must fit in 64 bits "
                                 f"(|value| <= {MAX_INT64})", _short(node),
                                 "use a smaller integer, or a float such as 1.0e30"))
            elif not _finite_float(node):
                out.append(_diag(doc, path, "must be a finite number (float64 range)",
                                 _short(node), "use a smaller number"))
    return out


def _finite_float(n: int) -> bool:
    try:
        return math.isfinite(float(n))
    except OverflowError:
        return False


def _short(n: int) -> str:
    """A huge integer, briefly: its first digits and its length."""
    s = str(abs(n))
    return repr(n) if len(s) <= 30 else f"{'-' if n < 0 else ''}{s[:6]}... ({len(s)} digits)"


def validate(doc: Document) -> list[Diagnostic]:
    """Every schema problem of ``doc``, sorted by position, duplicates removed."""
    out: list[Diagnostic] = _unrepresentable(doc)
    for e in _validator().iter_errors(doc.data):
        out.extend(convert(e, doc))
    # a misspelt key ("comptue") also makes its real name missing: report the spelling only
    misspelt = {_sibling(d.field, d.fix[len("did you mean '"):-2]) for d in out
                if d.rule == "unknown field" and d.fix and d.fix.startswith("did you mean '")}
    return by_position(unique(d for d in out if not (
        d.rule == "required field is missing" and d.field in misspelt)))


def _sibling(fieldpath: str, name: str) -> str:
    """``sizes.M.mutliple_of`` + ``multiple_of`` -> ``sizes.M.multiple_of``."""
    parent, _, _ = fieldpath.rpartition(".")
    return f"{parent}.{name}" if parent else name
