"""`python -m services.matcher` serves the matcher service."""

import sys

from services.matcher.app import build
from services.common.rpc.server import main

sys.exit(main("matcher", build))
