"""``python -m latency_tables {build,calibrate,validate,list} ...`` (see :mod:`latency_tables.cli`)."""

import sys

from latency_tables.cli import main

sys.exit(main())
