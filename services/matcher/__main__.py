"""`python -m services.matcher` serves the matcher service."""

import sys

from services.common.rpc.server import main
from services.matcher.app import build

sys.exit(main("matcher", build))
