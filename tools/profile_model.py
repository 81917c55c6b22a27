"""Profile the 16 TF-Slim MobileNetV1 width x resolution pairs against the published table.

The command is ``mobivision.commands.profile`` (also ``mobivision profile`` after install)."""

import sys

from mobivision.commands.profile import main

if __name__ == "__main__":
    sys.exit(main())
