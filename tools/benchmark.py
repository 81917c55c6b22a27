"""CPU speed of our models against their peers (timm, torchvision), measured in one interleaved run.

The command is ``mobivision.commands.benchmark`` (also ``mobivision benchmark`` after install)."""

import sys

from mobivision.commands.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
