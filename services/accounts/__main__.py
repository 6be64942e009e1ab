"""`python -m services.accounts` serves the accounts service."""

import sys

from services.accounts.app import build
from services.common.rpc.server import main

sys.exit(main("accounts", build))
