"""The lint stage's small data types and vocabulary: findings, results, allocation facts,
resolved names, and the constants the checker matches against (stage: lint).

Input/output: none (definitions only); used by :mod:`nkigen.lint.checker` and
:mod:`nkigen.lint.instr`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from nkigen.lint.api import SUBMODULES
from nkigen.lint.rules import RULE_BY_ID
from nkigen.lint.table import Api, Level

# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    col: int
    rule: str          # a rule id of nkigen.lint.rules
    message: str       # the rule, in words, with the call it concerns
    got: str | None
    fix: str

    @property
    def level(self) -> Level:
        return RULE_BY_ID[self.rule].level

    def __str__(self) -> str:
        got = f" (got {self.got})" if self.got is not None else ""
        lvl = "" if self.level is Level.ERROR else f" {self.level.value}:"
        head = f"{self.path}:{self.line}:{self.col}: lint[{self.rule}]:{lvl}"
        return f"{head} {self.message}{got}; {self.fix}"

    def as_dict(self) -> dict:
        r = RULE_BY_ID[self.rule]
        return {"path": self.path, "line": self.line, "col": self.col, "rule": self.rule,
                "level": r.level.value, "message": self.message, "got": self.got,
                "fix": self.fix, "source": r.source, "version": r.version}


@dataclass(frozen=True)
class LintResult:
    path: str
    api: Api | None            # None: the file imports no NKI API (nothing was checked)
    findings: tuple[Finding, ...]


# --- facts -----------------------------------------------------------------------------------

NKI_VERSION = (0, 3)     # the current-API version nkigen targets (S29 = SDK 2.29)
BUFFERS = ("sbuf", "psum", "hbm", "private_hbm", "shared_hbm")
ALLOCATORS = ("ndarray", "zeros", "ones", "full", "zeros_like", "empty_like", "ones_like",
              "full_like", "rand", "random")
ONE_BYTE = {"float8_e4m3", "float8_e5m2", "float8_e4m3fn", "float8_e8m0fnu", "int8", "uint8",
            "bool_", "float8_e4m3fn_x4", "float8_e5m2_x4", "float4_e2m1fn_x4"}
INT_DTYPES = {"int8", "int16", "int32", "uint8", "uint16", "uint32"}
# NumPy functions public kernels pass as operators (docs S25 nki.api.shared.rst lists numpy.* as
# accepted activation ops; kernels also pass np.add, np.max, ...) -> the nl operator they mean.
NUMPY_OPS = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
             "true_divide": "divide", "maximum": "maximum", "minimum": "minimum",
             "max": "maximum", "amax": "maximum", "min": "minimum", "amin": "minimum",
             "equal": "equal", "not_equal": "not_equal", "greater": "greater",
             "greater_equal": "greater_equal", "less": "less", "less_equal": "less_equal",
             "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
             "bitwise_xor": "bitwise_xor", "invert": "invert", "left_shift": "left_shift",
             "right_shift": "right_shift", "logical_and": "logical_and",
             "logical_or": "logical_or", "logical_xor": "logical_xor",
             "logical_not": "logical_not", "power": "power", "abs": "abs", "absolute": "abs",
             "square": "square", "sqrt": "sqrt", "reciprocal": "reciprocal", "exp": "exp",
             "log": "log", "tanh": "tanh", "sin": "sin", "arctan": "arctan", "sign": "sign",
             "copy": "copy"}
NUMPY_DTYPES = {"float32": "float32", "float16": "float16", "int8": "int8", "int16": "int16",
                "int32": "int32", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
                "bool_": "bool_"}
STRUCT_FIX = {
    "del": "drop it: a tile lives until the end of its scope",
    "raise": "check sizes with assert (the docs' kernels do)",
    "try": "no exception handling in a kernel",
}
KERNEL_DECORATORS = ("jit", "trace", "baremetal", "benchmark", "profile")


@dataclass(frozen=True)
class Alloc:
    dtype: str | None      # nl dtype name, when visible
    buffer: str | None     # one of BUFFERS (or "'<string>'"), when visible
    fn: str                # the allocator (ndarray, zeros, ...)


@dataclass(frozen=True)
class Ref:
    """A resolved dotted name: ``api`` None for numpy; ``path`` like ``nki.isa.tensor_scalar``."""

    api: Api | None
    path: str


def modules(api: Api) -> set[str]:
    return {"nki"} | {f"nki.{m}" for m in SUBMODULES[api]}


def int_literal(node: ast.AST | None) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = int_literal(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def float_literal(node: ast.AST | None) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return float_literal(node.operand)
    return isinstance(node, ast.Constant) and type(node.value) is float


def src(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
