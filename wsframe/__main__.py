"""``python -m wsframe``: see :mod:`wsframe.cli`."""

import sys

from wsframe.cli import main

sys.exit(main())
