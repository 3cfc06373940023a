"""``python -m avalign``: see :mod:`avalign.cli`."""

import sys

from .cli import main

sys.exit(main())
