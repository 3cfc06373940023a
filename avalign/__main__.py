"""``python -m avalign``: see :mod:`avalign.cli`."""

from .runctl import exit_with

from .cli import main

exit_with(main())
