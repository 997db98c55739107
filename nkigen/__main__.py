"""`python -m nkigen`: the same entry point as the `nkigen` console script."""

import sys

from nkigen.cli import main

sys.exit(main())
