"""`python -m nkigen`: the same entry point as the `nkigen` console script."""

import sys

if sys.argv[1:] == ["--version"]:   # start-up: answered before any other import
    from nkigen import __version__

    print(f"nkigen {__version__}")
    sys.exit(0)

from nkigen.cli import main  # noqa: E402

sys.exit(main())
