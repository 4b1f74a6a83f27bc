"""`python -m flywheel_localstack.real_model`: see run.py."""

import sys

from flywheel_localstack.real_model.run import main

sys.exit(main())
