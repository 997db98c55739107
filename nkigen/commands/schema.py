"""`nkigen schema`: print the spec language's JSON Schema (stage: none; a reference aid).

Input: nothing. Output: kernel.schema.json on stdout, or with ``--path`` the file's installed
location, for an editor modeline ``# yaml-language-server: $schema=<path>``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from nkigen.schema import SCHEMA_FILE, schema_text

HELP = "print the JSON Schema of kernel specs (for editors: --path gives its file location)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", action="store_true",
                        help="print the installed schema file's path instead of its text")


def run(args: argparse.Namespace) -> int:
    if args.path:
        print(resources.files("nkigen.schema").joinpath(SCHEMA_FILE))
    else:
        sys.stdout.write(schema_text())
    return 0
