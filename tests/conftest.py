"""Platform-wide tests: `tests/` on sys.path so test modules share the `e2e` journey library."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
