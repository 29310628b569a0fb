"""Entry point: python3 -m medisys_app"""

import sys

from .server import main

sys.exit(main())
