"""Export a trained checkpoint of any task to ONNX, INT8 ONNX, TorchScript and mobile formats, each verified.

The command is ``mobivision.commands.export`` (also ``mobivision export`` after install)."""

import sys

from mobivision.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
