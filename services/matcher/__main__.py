"""`python -m services.matcher` serves the matcher service."""

import sys

from services.matcher.app import build
from services.common.server import main

sys.exit(main("matcher", build))
