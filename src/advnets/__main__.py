"""``python -m advnets`` behaves exactly like the ``advnets`` command."""

import sys

from advnets.cli import main

sys.exit(main())
