"""Tabulate a sweep: ``python tools/collect.py runs/<task>/multirun_<time>``.

The command is ``mobivision.commands.collect`` (also ``mobivision collect`` after install)."""

import sys

from mobivision.commands.collect import main

if __name__ == "__main__":
    sys.exit(main())
