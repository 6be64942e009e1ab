"""`python -m services.marketdata` serves the marketdata service."""

import sys

from services.marketdata.app import build
from services.common.rpc.server import main

sys.exit(main("marketdata", build))
