"""`python -m labwarden`: the same dispatcher as the `labwarden` console script."""

import sys

from labwarden.cli import main

sys.exit(main())
