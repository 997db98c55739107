"""Shared helpers of the CLI tests: run ``nkigen`` in-process and a small valid spec."""

from __future__ import annotations

from nkigen.cli import main

# A valid element-wise spec; ``{name}`` is the kernel name (str.format template).
RELU_TEMPLATE = """\
nkigen: 1
name: {name}
sizes:
  M: {{multiple_of: 128}}
  N: {{min: 1, max: 1024}}
inputs:
  a: {{shape: [M, N], dtype: float32}}
outputs:
  c: {{shape: [M, N], dtype: float32}}
compute:
  - c[m, n] = relu(a[m, n])
tests:
  cases:
    - {{M: 128, N: 8}}
"""


def relu_spec(name: str = "k", doc: str | None = None) -> str:
    """The relu spec named ``name``, with a ``doc:`` line when given."""
    text = RELU_TEMPLATE.format(name=name)
    if doc is not None:
        text = text.replace(f"name: {name}\n", f"name: {name}\ndoc: {doc}\n", 1)
    return text


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; usage errors (SystemExit) become their exit code. Asserts that
    nothing printed a traceback."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err
