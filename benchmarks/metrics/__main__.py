from avalign.runctl import exit_with

from .cli import main

exit_with(main())
