"""``python -m annals`` is the ``annals`` command."""

import sys

from annals.cli import main

sys.exit(main())
