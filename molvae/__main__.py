"""``python -m molvae`` (and ``torchrun -m molvae``) runs the CLI."""

import sys

from molvae.cli import main

sys.exit(main())
