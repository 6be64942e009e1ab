"""`python -m services.orders` serves the orders service."""

import sys

from services.common.rpc.server import main
from services.orders.app import build

sys.exit(main("orders", build))
