"""`python -m services.orders` serves the orders service."""

import sys

from services.orders.app import build
from services.common.rpc.server import main

sys.exit(main("orders", build))
