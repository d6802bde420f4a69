"""``python -m sb3_tutorial_sac.compare``: the ``compare`` command alone.

Worker processes are spawned and unpickle ``RunSpec``/``Variant`` from ``sb3_tutorial_sac.compare.specs``, never
from this ``__main__`` module (multiprocessing does not re-run a package's ``__main__`` in its workers)."""

import sys

from sb3_tutorial_sac.compare.cli import main

sys.exit(main())
