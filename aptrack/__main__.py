import sys

from aptrack.cli import main

sys.exit(main())
