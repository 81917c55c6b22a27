"""Re-run the README's Measured rows (demos, export parity, profile, latency): ``python tools/measure.py``."""

import sys

from mobivision.commands.measure import main

if __name__ == "__main__":
    sys.exit(main())
