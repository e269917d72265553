"""``python -m faceland.cli``."""

import sys

from faceland.cli import main

sys.exit(main())
