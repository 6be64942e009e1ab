"""Who is calling the gateway, and what it presents upstream on their behalf.

This is where real authentication plugs in. Until sessions exist, a development user
id is taken from the ``X-MBT-Dev-User`` header, and only when ``MBT_DEV_LOGIN=1`` (on in
the embedded default, off otherwise; refused in production).
"""

from __future__ import annotations

import re

from starlette.requests import Request

from services.common.auth import user_credentials
from services.common.config import Settings

DEV_USER_HEADER = "x-mbt-dev-user"
_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


class InvalidIdentity(ValueError):
    pass


class DevHeaderIdentity:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.dev_login

    def user_id(self, request: Request) -> str | None:
        """The signed-in user's id, or None when the request carries no identity."""
        if not self.enabled:
            return None
        raw = request.headers.get(DEV_USER_HEADER)
        if raw is None:
            return None
        if not _USER_ID.match(raw):
            raise InvalidIdentity("X-MBT-Dev-User must be 1-128 characters of letters, digits, '_', '.', '@' or '-'")
        return raw

    @staticmethod
    def upstream_metadata(user_id: str) -> list[tuple[str, str]]:
        return user_credentials(user_id)
