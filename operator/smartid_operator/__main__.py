import sys

from smartid_operator.cli import main

sys.exit(main())
