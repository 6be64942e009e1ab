"""`python -m services.activities` serves the activities service."""

import sys

from services.activities.app import build
from services.common.rpc.server import main

sys.exit(main("activities", build))
