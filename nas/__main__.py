"""``python -m nas``: the same as the ``nas`` command."""

import sys

from nas.cli import main

sys.exit(main())
