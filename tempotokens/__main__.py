"""``python -m tempotokens``: see :mod:`tempotokens.cli`."""

import sys

from .cli import main

sys.exit(main())
