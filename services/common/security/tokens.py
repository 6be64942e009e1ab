"""Signed bearer tokens (JWT, HS256): the only way a caller proves who it is, on every hop.

Three kinds, told apart by ``typ`` and audience, signed by two separate key rings:

* ``user``: a user's session token (the gateway's cookie) or a CLI-issued user token.
  ``sub`` user id, ``tier``, ``scope`` (``read``, ``trade``), optional ``sid`` (the session
  row that can revoke it) and ``elv`` (elevated until, unix seconds). Audience ``mbt``.
* ``ops``: an operator. ``sub`` the operator, scope ``read``, never ``trade``. Audience ``mbt``.
* ``service``: one MBT component calling another. ``sub`` the component. Audience
  ``mbt-internal`` and the *service* key ring: nothing that can sign a user or ops token
  can sign one of these, and a user token is never read as one.

Every key has a ``kid``; a ring signs with its first key and verifies with all of them,
which is how keys rotate (README, "Security"). With no keys configured, development rings
derived from published constants are used: any process of the embedded default can verify
any other's tokens with zero setup, and production refuses to start without real keys.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import jwt

from services.common.config import Settings
from services.common.errors import DomainError

ALGORITHM = "HS256"
ISSUER = "mbt"
USER_AUDIENCE = "mbt"
SERVICE_AUDIENCE = "mbt-internal"
USER, OPS, SERVICE = "user", "ops", "service"
READ, TRADE = "read", "trade"
TIERS = ("free", "pro", "pro_plus")
SERVICE_TOKEN_TTL_SECONDS = 300
# Clock skew tolerated between the replica that signed a token and the one checking it.
LEEWAY_SECONDS = 5
# Far above any token we issue; refusing longer input keeps hostile headers cheap.
MAX_TOKEN_CHARS = 4096
# The JSON type of every claim MBT reads. A signed token is still input: a claim of another
# type (a list, an object, a bool for a number) makes the token invalid before any code uses it.
CLAIM_TYPES: dict[str, type] = {
    "iss": str,
    "aud": str,
    "typ": str,
    "sub": str,
    "iat": int,
    "exp": int,
    "jti": str,
    "tier": str,
    "scope": str,
    "sid": str,
    "elv": int,
}

# Wall-clock unix seconds. Token, session and rate-limit times are real time, never the
# simulated market clock; tests pass a fixed one.
WallTime = Callable[[], float]


class InvalidToken(DomainError):
    """A presented token that cannot be trusted: always UNAUTHENTICATED."""

    def __init__(self, message: str) -> None:
        super().__init__("UNAUTHENTICATED", message)


@dataclass(frozen=True)
class KeyRing:
    """Secrets by kid, in order: the first signs, every one verifies."""

    keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    audience: str
    kinds: frozenset[str]

    @property
    def signing(self) -> tuple[str, bytes]:
        return self.keys[0]

    def secret(self, kid: str) -> bytes | None:
        return dict(self.keys).get(kid)


def development_key(purpose: str) -> tuple[str, bytes]:
    """A development-only key, the same in every process: derived from a published constant."""
    return f"dev-{purpose}", hashlib.sha256(f"mbt development only, never production: {purpose}".encode()).digest()


def actor_key(settings: Settings) -> bytes:
    """The key of keyed hashes that stand for user ids where the id itself must go (the audit
    chain's actor and user hashes, erasure tombstones): ``MBT_AUDIT_ACTOR_KEY``, or the
    development key (the same in every process; production refuses to start without one)."""
    return settings.audit_actor_key or development_key("audit-actor")[1]


@dataclass(frozen=True)
class TokenKeys:
    user: KeyRing
    service: KeyRing

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenKeys:
        return cls.of(
            settings.user_token_keys or (development_key(USER),),
            settings.service_token_keys or (development_key(SERVICE),),
        )

    @classmethod
    def development(cls) -> TokenKeys:
        return cls.of((development_key(USER),), (development_key(SERVICE),))

    @classmethod
    def of(cls, user: Iterable[tuple[str, bytes]], service: Iterable[tuple[str, bytes]]) -> TokenKeys:
        return cls(
            KeyRing(tuple(user), USER_AUDIENCE, frozenset({USER, OPS})),
            KeyRing(tuple(service), SERVICE_AUDIENCE, frozenset({SERVICE})),
        )

    def ring_for(self, kind: str) -> KeyRing:
        return self.service if kind == SERVICE else self.user


@dataclass(frozen=True)
class Claims:
    kind: str
    subject: str
    expires_at: int
    issued_at: int
    token_id: str
    tier: str = ""
    scopes: frozenset[str] = frozenset()
    session_id: str = ""
    elevated_until: int = 0


class TokenIssuer:
    def __init__(self, keys: TokenKeys, now: WallTime = time.time) -> None:
        self.keys = keys
        self.now = now

    def _sign(self, kind: str, subject: str, ttl_seconds: int, **claims: object) -> str:
        ring = self.keys.ring_for(kind)
        kid, secret = ring.signing
        issued = int(self.now())
        payload = {
            "iss": ISSUER,
            "aud": ring.audience,
            "typ": kind,
            "sub": subject,
            "iat": issued,
            "exp": issued + int(ttl_seconds),
            "jti": secrets.token_urlsafe(12),
            **{k: v for k, v in claims.items() if v},
        }
        return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": kid})

    def user(
        self,
        user_id: str,
        *,
        tier: str,
        ttl_seconds: int,
        scopes: Iterable[str] = (READ, TRADE),
        session_id: str = "",
        elevated_until: int = 0,
    ) -> str:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        return self._sign(
            USER,
            user_id,
            ttl_seconds,
            tier=tier,
            scope=" ".join(sorted(set(scopes))),
            sid=session_id,
            elv=int(elevated_until),
        )

    def ops(self, operator: str, *, ttl_seconds: int) -> str:
        return self._sign(OPS, operator, ttl_seconds, scope=READ)

    def service(self, name: str, *, ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS) -> str:
        return self._sign(SERVICE, name, ttl_seconds)


class TokenVerifier:
    """Checks signature, key, audience, issuer, kind and lifetime. Lifetimes are checked
    against ``now`` (not PyJWT's own clock) so every component, and tests, agree on time."""

    def __init__(self, keys: TokenKeys, now: WallTime = time.time) -> None:
        self.keys = keys
        self.now = now

    def verify(self, token: str, kinds: Iterable[str] = (USER, OPS, SERVICE), *, allow_expired: bool = False) -> Claims:
        """The claims of a valid token of one of ``kinds``; ``InvalidToken`` otherwise.
        ``allow_expired`` is for session refresh only, where the session row is the authority."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("the token is missing or malformed")
        claims = self._signed_claims(token, frozenset(kinds))
        now = self.now()
        if claims.issued_at > now + LEEWAY_SECONDS:
            raise InvalidToken("the token is not valid yet")
        if claims.expires_at <= now - LEEWAY_SECONDS and not allow_expired:
            raise InvalidToken("the token has expired; sign in again or refresh the session")
        return claims

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one verifier per process; tokens are immutable
    def _signed_claims(self, token: str, kinds: frozenset[str]) -> Claims:
        """Signature, key, audience, issuer and kind: fixed for a token string, so a token seen
        on every hop of a request is verified once (lifetimes are checked on every use)."""
        try:
            header = jwt.get_unverified_header(token)
            claimed_kind = jwt.decode(token, options={"verify_signature": False}).get("typ")
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        if header.get("alg") != ALGORITHM or not isinstance(claimed_kind, str) or claimed_kind not in kinds:
            raise InvalidToken("this kind of token is not accepted here")
        ring = self.keys.ring_for(claimed_kind)
        secret = ring.secret(str(header.get("kid", "")))
        if secret is None:
            raise InvalidToken("the token was signed with an unknown key")
        try:
            payload = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=ring.audience,
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "typ", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is not valid") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        return _claims(payload, ring)


def _claims(payload: dict, ring: KeyRing) -> Claims:
    """The claims of a payload whose signature is verified, every one type-checked first."""
    if any(name in payload and type(payload[name]) is not kind for name, kind in CLAIM_TYPES.items()):
        raise InvalidToken("the token is not valid")
    kind = payload["typ"]
    if kind not in ring.kinds or not payload["sub"]:
        raise InvalidToken("the token is not valid")
    scopes = frozenset(payload.get("scope", "").split())
    tier = payload.get("tier", "")
    if kind == OPS and TRADE in scopes:
        raise InvalidToken("the token is not valid")
    if kind == USER and tier not in TIERS:
        raise InvalidToken("the token is not valid")
    return Claims(
        kind=kind,
        subject=payload["sub"],
        expires_at=int(payload["exp"]),
        issued_at=int(payload["iat"]),
        token_id=payload["jti"],
        tier=tier,
        scopes=scopes,
        session_id=payload.get("sid", ""),
        elevated_until=payload.get("elv", 0),
    )


def new_key() -> str:
    """A fresh ``kid:secret`` entry for MBT_USER_TOKEN_KEYS / MBT_SERVICE_TOKEN_KEYS."""
    kid = time.strftime("k%Y%m%d-") + secrets.token_hex(3)
    return f"{kid}:{secrets.token_urlsafe(32)}"
