"""``python -m sb3_tutorial_sac``: the ``sb3-tutorial-sac`` command line."""

import sys

from sb3_tutorial_sac.cli import main

sys.exit(main())
