"""``python -m mobivision <command>``: the same as the ``mobivision`` console script."""

import sys

from mobivision.commands.main import main

sys.exit(main())
