"""`python -m nkigen`: the same entry point as the `nkigen` console script."""

import sys

if sys.argv[1:] == ["--version"]:   # start-up: answered before any other import
    from nkigen import __version__

    print(f"nkigen {__version__}")
    sys.exit(0)

try:    # Ctrl-C while nkigen is being imported: exit like an interrupt, without a traceback
    from nkigen import interrupts

    interrupts.install()
    from nkigen.cli import main
except KeyboardInterrupt:
    sys.stderr.write("nkigen: interrupted\n")
    sys.exit(130)

sys.exit(main())
