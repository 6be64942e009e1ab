"""Passkey ceremonies (WebAuthn, with the ``webauthn`` library): registration and assertion.

Each ceremony starts with options carrying a fresh random challenge, remembered in shared
state for ``CHALLENGE_TTL_SECONDS``; the answer is matched to its challenge through the
challenge inside its signed ``clientDataJSON``, and the challenge is taken (read and
deleted atomically), so an assertion can be used once: a replay finds no challenge. The
library checks the origin (``MBT_PUBLIC_ORIGINS``), the RP id hash (``MBT_WEBAUTHN_RP_ID``),
user presence and verification, the signature, and that the signature counter went up
(unless the authenticator keeps none); the counter is then stored compare-and-set.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import webauthn
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from gateway.store import Passkey, PasskeyRepository
from services.common.config import Settings
from services.common.errors import DomainError
from services.common.security.shared_state import SharedState
from services.common.security.tokens import InvalidToken, WallTime

CHALLENGE_NAMESPACE = "webauthn"
CHALLENGE_TTL_SECONDS = 300
REGISTRATION, ASSERTION = "registration", "assertion"
_MAX_CLIENT_DATA_CHARS = 8192


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def challenge_of(credential: Any) -> str:
    """The challenge a credential answers, read from its clientDataJSON (verified later)."""
    try:
        encoded = credential["response"]["clientDataJSON"]
        if not isinstance(encoded, str) or len(encoded) > _MAX_CLIENT_DATA_CHARS:
            raise ValueError
        challenge = json.loads(_b64url_decode(encoded))["challenge"]
        if not isinstance(challenge, str) or not 16 <= len(challenge) <= 256:
            raise ValueError
    except (KeyError, TypeError, ValueError, UnicodeDecodeError):
        raise DomainError(
            "INVALID_ARGUMENT", "credential must be a WebAuthn public-key credential (JSON form)", field="credential"
        ) from None
    return challenge


class Passkeys:
    def __init__(self, settings: Settings, repository: PasskeyRepository, state: SharedState, now: WallTime) -> None:
        self.rp_id = settings.webauthn_rp_id
        self.rp_name = settings.webauthn_rp_name
        self.origins = list(settings.public_origins)
        self.repository = repository
        self.state = state
        self.now = now

    async def _remember(self, challenge: bytes, purpose: str, user_id: str = "") -> None:
        await self.state.put(
            CHALLENGE_NAMESPACE,
            bytes_to_base64url(challenge),
            {"purpose": purpose, "user_id": user_id},
            CHALLENGE_TTL_SECONDS,
        )

    async def _take(self, credential: Any, purpose: str) -> tuple[bytes, dict]:
        challenge = challenge_of(credential)
        record = await self.state.take(CHALLENGE_NAMESPACE, challenge)
        if record is None or record.get("purpose") != purpose:
            raise InvalidToken("the passkey answer does not match a pending challenge (expired or already used)")
        return _b64url_decode(challenge), record

    async def has_any(self, user_id: str) -> bool:
        return bool(await self.repository.for_user(user_id))

    async def registration_options(self, user_id: str, user_name: str) -> dict:
        existing = await self.repository.for_user(user_id)
        options = webauthn.generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=user_id.encode(),
            user_name=user_name,
            timeout=CHALLENGE_TTL_SECONDS * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=_b64url_decode(p.credential_id)) for p in existing],
        )
        await self._remember(options.challenge, REGISTRATION, user_id)
        return json.loads(webauthn.options_to_json(options))

    async def register(self, credential: Any) -> Passkey:
        challenge, record = await self._take(credential, REGISTRATION)
        try:
            verified = webauthn.verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                require_user_verification=True,
            )
        except Exception as exc:
            raise DomainError(
                "INVALID_ARGUMENT", f"the passkey was not accepted: {_reason(exc)}", field="credential"
            ) from None
        transports = credential["response"].get("transports")
        transports = transports if isinstance(transports, list) else []
        passkey = Passkey(
            credential_id=bytes_to_base64url(verified.credential_id),
            user_id=record["user_id"],
            credential_public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=tuple(str(t)[:16] for t in transports if isinstance(t, str))[:6],
            aaguid=verified.aaguid,
            backed_up=verified.credential_backed_up,
            created_at=self._utcnow(),
            last_used_at=None,
        )
        if not await self.repository.add(passkey):
            raise DomainError("CONFLICT", "this passkey is already registered")
        return passkey

    async def assertion_options(self) -> dict:
        """Options for a discoverable-credential assertion: the authenticator offers the
        user's passkeys for this site; no user name is asked or revealed."""
        options = webauthn.generate_authentication_options(
            rp_id=self.rp_id,
            timeout=CHALLENGE_TTL_SECONDS * 1000,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        await self._remember(options.challenge, ASSERTION)
        return json.loads(webauthn.options_to_json(options))

    async def verify_assertion(self, credential: Any) -> Passkey:
        """The passkey that signed this fresh assertion; ``InvalidToken`` for anything else."""
        challenge, _ = await self._take(credential, ASSERTION)
        credential_id = credential.get("id") if isinstance(credential, dict) else None
        passkey = await self.repository.get(credential_id) if isinstance(credential_id, str) else None
        if passkey is None:
            raise InvalidToken("this passkey is not registered")
        try:
            verified = webauthn.verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                credential_public_key=passkey.credential_public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except Exception as exc:
            raise InvalidToken(f"the passkey assertion was refused: {_reason(exc)}") from None
        user_handle = credential["response"].get("userHandle")
        if user_handle and str(user_handle).rstrip("=") != bytes_to_base64url(passkey.user_id.encode()):
            raise InvalidToken("the passkey assertion names another user")
        if not await self.repository.record_use(passkey, verified.new_sign_count, self._utcnow()):
            raise InvalidToken("the passkey was used concurrently; try again")
        return passkey

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def _reason(exc: Exception) -> str:
    """The library's own words when it refused; a generic phrase for anything else."""
    if isinstance(exc, WebAuthnException):
        return str(exc)[:200]
    return "malformed credential"
