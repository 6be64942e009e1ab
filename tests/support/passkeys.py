"""A software passkey for tests: what a browser and its authenticator would send.

Built on ``soft_webauthn``'s device (an ES256 key and its credential id), it answers the
gateway's JSON options with the JSON form of a ``PublicKeyCredential``
(``credential.toJSON()``), and sets user presence *and* verification as a passkey does.
Tests can lie the way attackers would: another origin, another RP id, a counter that went
backwards.
"""

from __future__ import annotations

import json
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256
from fido2.utils import sha256
from soft_webauthn import SoftWebauthnDevice

USER_PRESENT, USER_VERIFIED, ATTESTED_DATA = 0x01, 0x04, 0x40


def b64url(raw: bytes) -> str:
    return urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftPasskey:
    def __init__(self) -> None:
        self.device = SoftWebauthnDevice()

    @property
    def sign_count(self) -> int:
        return self.device.sign_count

    @sign_count.setter
    def sign_count(self, value: int) -> None:
        self.device.sign_count = value

    def create(self, options: dict, origin: str, rp_id: str | None = None) -> dict:
        """Answer registration options (``data.options`` of the gateway's response)."""
        rp_id = rp_id or options["rp"]["id"]
        self.device.cred_init(rp_id, unb64url(options["user"]["id"]))
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin}
        ).encode()
        public_key = cbor.encode(ES256.from_cryptography_key(self.device.private_key.public_key()))
        auth_data = (
            sha256(rp_id.encode())
            + bytes([USER_PRESENT | USER_VERIFIED | ATTESTED_DATA])
            + struct.pack(">I", self.device.sign_count)
            + self.device.aaguid
            + struct.pack(">H", len(self.device.credential_id))
            + self.device.credential_id
            + public_key
        )
        attestation = cbor.encode({"authData": auth_data, "fmt": "none", "attStmt": {}})
        credential_id = b64url(self.device.credential_id)
        return {
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
        }

    def get(self, options: dict, origin: str, rp_id: str | None = None) -> dict:
        """Answer assertion options with a fresh signature (the counter goes up by one)."""
        rp_id = rp_id or options["rpId"]
        self.device.sign_count += 1
        client_data = json.dumps({"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}).encode()
        auth_data = (
            sha256(rp_id.encode()) + bytes([USER_PRESENT | USER_VERIFIED]) + struct.pack(">I", self.device.sign_count)
        )
        signature = self.device.private_key.sign(auth_data + sha256(client_data), ec.ECDSA(hashes.SHA256()))
        credential_id = b64url(self.device.credential_id)
        return {
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(self.device.user_handle),
            },
        }
