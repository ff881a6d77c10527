"""`python -m dlapps APP VERB ...`: the same as the `dlapps` command."""

import sys

from dlapps.cli import main

if __name__ == "__main__":
    sys.exit(main())
