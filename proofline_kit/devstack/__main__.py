"""`python -m proofline_kit.devstack`."""

import sys

from proofline_kit.devstack.cli import main

sys.exit(main())
