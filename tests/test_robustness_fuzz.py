"""Property test: random mutations of valid spec files (delete a line, duplicate a line, swap
two characters, insert random unicode, truncate at a random byte, ...) never make `nkigen check`
raise, print a traceback or report an internal error: it exits 0 or 1.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nkigen.cli import main

SPECS = Path(__file__).resolve().parents[1] / "specs"
BASES = ["add.yaml", "matmul_bias_gelu.yaml", "conv1d.yaml", "layernorm.yaml", "softmax.yaml"]
TEXT = {name: (SPECS / name).read_bytes() for name in BASES}

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ODD = st.sampled_from(["\x00", "\u2028", "\ufeff", "\t", "\r", "\\", '"', "'", "{", "}", "[",
                       "]", ":", "-", "#", "&a", "*a", "!!python/object", "!", "%", "|", ">",
                       "? ", "---", "...", "\U0001F600", "é", "ａ", "\x85", "0x", "1e999", "~",
                       "(", ")", ",", "=", "+=", "**", "lambda", "__", "{{", "}}"])


TOKEN = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]*)?")
TOKENS = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "3", "127", "128", "129", "256", "512", "513",
                     "16384", "1e999", "-0.0", "0.5", ".nan", ".inf", "true", "null", "9" * 40,
                     "m", "n", "k", "j", "M", "N", "K", "H", "x", "a", "sum", "max", "exp",
                     "gelu", "maximum", "float32", "bfloat16", "float8_e4m3", "auto", "trn1",
                     "tiles", "order", "block", "buffers", "value", "min", "multiple_of",
                     "ranges", "temps", "params", "sizes", "inputs", "outputs", "compute",
                     "tests", "cases", "tolerance", "seed", "dist", "uniform", "mean", "std",
                     "rtol", "atol", "shape", "dtype", "name", "doc", "target", "schedule"]),
    st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,6}\Z"),
    st.integers(-5, 100000).map(str),
)


def check_bytes(data: bytes) -> tuple[int, str]:
    fd, path = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["check", path])
            except SystemExit as e:  # argparse only; check's own errors return
                code = e.code if isinstance(e.code, int) else 1
        text = out.getvalue() + err.getvalue()
    finally:
        os.unlink(path)
    assert code in (0, 1), (code, text)
    assert "Traceback" not in text, text
    assert "internal error" not in text, text
    if code == 1:
        assert path in text, text
    return code, text


@st.composite
def mutated(draw) -> bytes:
    base = draw(st.sampled_from(BASES))
    data = TEXT[base]
    for _ in range(draw(st.integers(1, 3))):
        lines = data.split(b"\n")
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate",
                                   "replace_char", "indent", "move", "token", "token"]))
        if op == "delete" and len(lines) > 1:
            del lines[draw(st.integers(0, len(lines) - 1))]
            data = b"\n".join(lines)
        elif op == "duplicate":
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif op == "move" and len(lines) > 1:
            i = draw(st.integers(0, len(lines) - 1))
            line = lines.pop(i)
            lines.insert(draw(st.integers(0, len(lines))), line)
            data = b"\n".join(lines)
        elif op == "indent":
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(st.sampled_from([b" ", b"  ", b"\t", b"-"])) + lines[i]
            data = b"\n".join(lines)
        elif op == "swap" and len(data) > 1:
            i = draw(st.integers(0, len(data) - 2))
            j = draw(st.integers(0, len(data) - 1))
            b = bytearray(data)
            b[i], b[j] = b[j], b[i]
            data = bytes(b)
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            s = draw(st.one_of(ODD, st.text(min_size=1, max_size=4)))
            data = data[:i] + s.encode("utf-8", "surrogatepass") + data[i:]
        elif op == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif op == "token":
            spans = [m.span() for m in TOKEN.finditer(data)]
            if spans:
                i, j = spans[draw(st.integers(0, len(spans) - 1))]
                data = data[:i] + draw(TOKENS).encode() + data[j:]
        elif op == "replace_char" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    return data


@pytest.mark.parametrize("base", BASES)
def test_bases_are_valid(base):
    assert check_bytes(TEXT[base])[0] == 0


@SETTINGS
@given(mutated())
@example(TEXT["add.yaml"][:57])
@example(TEXT["conv1d.yaml"].replace(b"\n", b"\n\t", 1))
@example(TEXT["layernorm.yaml"] + b"\n\xed\xa0\x80")  # a UTF-8 encoded surrogate
def test_mutated_specs_never_crash_check(data):
    check_bytes(data)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_check(data):
    check_bytes(data)


@SETTINGS
@given(st.text(max_size=200))
def test_random_text_never_crash_check(text):
    check_bytes(text.encode("utf-8", "surrogatepass"))
