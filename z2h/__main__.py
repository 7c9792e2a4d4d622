import sys

from z2h.cli import main

sys.exit(main())
