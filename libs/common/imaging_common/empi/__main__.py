"""`python -m imaging_common.empi dedupe|link|estimate ...` (see cli.py)."""

import sys

from imaging_common.empi.cli import main

sys.exit(main())
