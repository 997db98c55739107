"""Stage: lint. Static checks of NKI kernel source against the documented API, per version.

``table`` (row types), ``api_nki`` / ``api_classic`` (rows extracted from the API reference by
``extract``), ``rules`` (the rules and removed/deprecated names, from the docs' prose), ``api``
(lookup), ``checker`` (``ast`` traversal, names, signatures, facts), ``instr`` (instruction
rules), ``scope`` (classic block scoping), ``model`` (findings, facts), ``report`` (text, JSON,
the table summary). Entry points: :func:`nkigen.lint.checker.lint_source` and
:func:`nkigen.lint.checker.lint_file`; ``nkigen lint``; the build's lint stage.
"""
