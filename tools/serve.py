"""Serve a model on a local web page (drop an image, see the results) and a JSON endpoint, ``POST /predict``.

The command is ``mobivision.commands.serve`` (also ``mobivision serve`` after install)."""

import sys

from mobivision.commands.serve import main

if __name__ == "__main__":
    sys.exit(main())
