"""`python -m services.marketdata` serves the marketdata service."""

import sys

from services.common.rpc.server import main
from services.marketdata.app import build

sys.exit(main("marketdata", build))
