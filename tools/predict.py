"""Predict with a trained checkpoint on an image or a folder of images.

The command is ``mobivision.commands.predict`` (also ``mobivision predict`` after install)."""

import sys

from mobivision.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
