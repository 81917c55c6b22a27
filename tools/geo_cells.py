"""Build adaptive S2 cell partitions (geolocation classes) from a geotagged training list.

The command is ``mobivision.commands.geo_cells`` (also ``mobivision geo-cells`` after install)."""

import sys

from mobivision.commands.geo_cells import main

if __name__ == "__main__":
    sys.exit(main())
