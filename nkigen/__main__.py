"""`python -m nkigen`: the same entry point as the `nkigen` console script."""

import sys

try:    # Ctrl-C while nkigen is being imported: exit like an interrupt, without a traceback
    from nkigen.cli import main
except KeyboardInterrupt:
    sys.stderr.write("nkigen: interrupted\n")
    sys.exit(130)

sys.exit(main())
