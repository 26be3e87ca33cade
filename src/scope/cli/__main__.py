"""``python -m scope.cli`` runs the ``scope`` command."""

import sys

from scope.cli import main

sys.exit(main())
