"""``python main.py ...`` is ``segtool ...``."""

import sys

from segtool.cli import main

if __name__ == "__main__":
    sys.exit(main())
