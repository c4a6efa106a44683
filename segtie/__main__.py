"""``python -m segtie``: the same as the ``segtie`` command."""

import sys

from segtie.cli import main

sys.exit(main())
