"""``python -m segtool ...`` is ``segtool ...``."""

import sys

from segtool.cli import main

sys.exit(main())
