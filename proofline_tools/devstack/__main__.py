"""`python -m proofline_tools.devstack`."""

import sys

from proofline_tools.devstack.cli import main

sys.exit(main())
