"""CLI subcommands, one module each (see :mod:`nkigen.cli`)."""
