import sys

from flywheel_contracts.traffic.cli import main

sys.exit(main())
