"""Convert MobileNet weights (TF-Slim, Keras, timm, torchvision, ...) into a mobivision safetensors file.

The command is ``mobivision.commands.convert`` (also ``mobivision convert`` after install)."""

import sys

from mobivision.commands.convert import main

if __name__ == "__main__":
    sys.exit(main())
