"""The ``/api/sessions`` endpoints: passkey registration and sign-in, the current session,
refresh, step-up, sign-out, and the development login.

The endpoints that need no sign-in (passkey options, registration and sign-in, the
development login) spend their client address's budget first (``Admission.admit_anonymous``).
Sign-in, refresh, step-up and the development login answer with the session and set its
token in an ``HttpOnly; Secure; SameSite=Strict`` cookie; the body carries the same token
for native clients, which send it as ``authorization: Bearer``. Their JSON shapes are
declared here too (``openapi_paths``) and served in the OpenAPI document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admission import Admission
from gateway.bodies import read_json
from gateway.errors import ALL_METHODS, Handler, by_method, enveloped, request_id_of
from gateway.identity import SESSION_COOKIE, Caller, presented_token
from gateway.passkeys import Passkeys
from gateway.sessions import DEV, PASSKEY, IssuedToken, Sessions
from gateway.store import Passkey
from gateway.transcoding import InvalidInput
from services.common.config import Settings
from services.common.errors import DomainError
from services.common.ids import new_id
from services.common.security.auth import USER_ID
from services.common.security.tokens import WallTime

MAX_USER_NAME = 64
_REF = "#/components/schemas/"
_TIME = {"type": "string", "format": "date-time"}
_OPTIONAL_TIME = {"type": ["string", "null"], "format": "date-time"}
_EMPTY_BODY = {"type": "object", "additionalProperties": False, "properties": {}}
_CREDENTIAL_BODY = {"$ref": _REF + "CredentialRequest"}
_PUBLIC: list[dict[str, list[str]]] = []  # no credential needed
_OPTIONAL_SESSION: list[dict[str, list[str]]] = [{}, {"sessionCookie": []}, {"bearerToken": []}]

# The OpenAPI shapes of the session endpoints (gateway.openapi merges them with the API's).
SCHEMAS = {
    "Session": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "session_id",
            "user_id",
            "tier",
            "method",
            "created_at",
            "expires_at",
            "elevated",
            "elevated_until",
            "token",
            "token_expires_at",
        ],
        "properties": {
            "session_id": {"type": ["string", "null"], "description": "null for a token without a session"},
            "user_id": {"type": "string"},
            "tier": {"type": "string", "enum": ["free", "pro", "pro_plus"]},
            "method": {"type": "string", "enum": [PASSKEY, DEV, "token"]},
            "created_at": _TIME,
            "expires_at": _TIME,
            "elevated": {"type": "boolean", "description": "a fresh passkey assertion is recent (step-up)"},
            "elevated_until": _OPTIONAL_TIME,
            "token": {
                "type": ["string", "null"],
                "description": "the session token (also in the cookie); null except when just issued",
            },
            "token_expires_at": _TIME,
        },
    },
    "Passkey": {
        "type": "object",
        "additionalProperties": False,
        "required": ["credential_id", "user_id", "created_at", "backed_up", "transports"],
        "properties": {
            "credential_id": {"type": "string"},
            "user_id": {"type": "string"},
            "created_at": _TIME,
            "backed_up": {"type": "boolean"},
            "transports": {"type": "array", "items": {"type": "string"}},
        },
    },
    "CredentialRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["credential"],
        "properties": {
            "credential": {
                "type": "object",
                "description": "The JSON form of the PublicKeyCredential the browser returned (`credential.toJSON()`)",
            }
        },
    },
    "CeremonyOptions": {
        "type": "object",
        "additionalProperties": False,
        "required": ["options"],
        "properties": {
            "user_id": {"type": "string"},
            "options": {"type": "object", "description": "publicKey options for navigator.credentials (JSON form)"},
        },
    },
    "SignedOut": {
        "type": "object",
        "additionalProperties": False,
        "required": ["session_id", "ended"],
        "properties": {"session_id": {"type": ["string", "null"]}, "ended": {"type": "boolean"}},
    },
}
_SESSION = {"$ref": _REF + "Session"}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/sessions", "POST"): {
        "operationId": "sessions.signIn",
        "summary": "Sign in with a passkey assertion",
        "security": _PUBLIC,
        "request": _CREDENTIAL_BODY,
        "responses": {"201": ("Signed in; the session cookie is set", _SESSION)},
    },
    ("/api/sessions/current", "GET"): {
        "operationId": "sessions.current",
        "summary": "The current session, and whether it is elevated",
        "request": None,
        "responses": {"200": ("The session", _SESSION)},
    },
    ("/api/sessions/current", "DELETE"): {
        "operationId": "sessions.signOut",
        "summary": "Sign out: the session ends at once",
        "request": None,
        "responses": {"200": ("Signed out; the cookie is cleared", {"$ref": _REF + "SignedOut"})},
    },
    ("/api/sessions/refresh", "POST"): {
        "operationId": "sessions.refresh",
        "summary": "A new token for a live session (the old may have expired)",
        "request": _EMPTY_BODY,
        "responses": {"200": ("A new token; the cookie is set", _SESSION)},
    },
    ("/api/sessions/step-up", "POST"): {
        "operationId": "sessions.stepUp",
        "summary": "Elevate the session with a fresh passkey assertion",
        "request": _CREDENTIAL_BODY,
        "responses": {"200": ("Elevated; the cookie is set", _SESSION)},
    },
    ("/api/sessions/dev", "POST"): {
        "operationId": "sessions.devLogin",
        "security": _PUBLIC,
        "summary": "Development login (only with MBT_DEV_LOGIN=1, never in production)",
        "request": {
            "type": "object",
            "additionalProperties": False,
            "required": ["user_id"],
            "properties": {"user_id": {"type": "string", "pattern": USER_ID.pattern}},
        },
        "responses": {"201": ("Signed in; the session cookie is set", _SESSION)},
    },
    ("/api/sessions/passkeys/registration/options", "POST"): {
        "operationId": "passkeys.registrationOptions",
        "security": _OPTIONAL_SESSION,
        "summary": "Start registering a passkey: for a new user, or another one for the signed-in user",
        "request": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"user_name": {"type": "string", "maxLength": MAX_USER_NAME}},
        },
        "responses": {"200": ("Options for navigator.credentials.create()", {"$ref": _REF + "CeremonyOptions"})},
    },
    ("/api/sessions/passkeys/registration", "POST"): {
        "operationId": "passkeys.register",
        "summary": "Finish registering a passkey",
        "security": _PUBLIC,
        "request": _CREDENTIAL_BODY,
        "responses": {"201": ("The passkey is registered", {"$ref": _REF + "Passkey"})},
    },
    ("/api/sessions/passkeys/assertion/options", "POST"): {
        "operationId": "passkeys.assertionOptions",
        "security": _PUBLIC,
        "summary": "Start a passkey assertion (sign-in or step-up)",
        "request": _EMPTY_BODY,
        "responses": {"200": ("Options for navigator.credentials.get()", {"$ref": _REF + "CeremonyOptions"})},
    },
}


def rfc3339(unix_seconds: int | float | None) -> str | None:
    if not unix_seconds:
        return None
    return datetime.fromtimestamp(int(unix_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object(body: object, allowed: dict[str, type], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``body`` as a JSON object with only ``allowed`` keys of the given types."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "the request body must be a JSON object")
    for key, value in body.items():
        if key not in allowed:
            raise InvalidInput(key, f"unknown field {key!r}")
        if not isinstance(value, allowed[key]):
            raise InvalidInput(key, f"{key} must be a JSON {'object' if allowed[key] is dict else 'string'}")
    for key in required:
        if key not in body:
            raise InvalidInput(key, f"{key} is required")
    return body


class SessionEndpoints:
    def __init__(
        self, settings: Settings, admission: Admission, sessions: Sessions, passkeys: Passkeys, now: WallTime
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.sessions = sessions
        self.passkeys = passkeys
        self.now = now

    # -- responses ---------------------------------------------------------------------

    def _envelope(self, request: Request, data: dict, status: int = 200) -> JSONResponse:
        return JSONResponse({"data": data, "meta": {"request_id": request_id_of(request)}}, status_code=status)

    def _issued_view(self, issued: IssuedToken) -> dict:
        """A session just issued, with its token (for native clients)."""
        row = issued.row
        return {
            "session_id": row.session_id,
            "user_id": row.user_id,
            "tier": row.tier,
            "method": row.method,
            "created_at": rfc3339(row.created_at),
            "expires_at": rfc3339(row.expires_at),
            "elevated": self.now() < row.elevated_until,
            "elevated_until": rfc3339(row.elevated_until),
            "token": issued.token,
            "token_expires_at": rfc3339(issued.token_expires_at),
        }

    def _current_view(self, caller: Caller) -> dict:
        """The caller's session (or its sessionless token); the token itself is never repeated."""
        claims, row = caller.claims, caller.session
        return {
            "session_id": row.session_id if row else None,
            "user_id": claims.subject,
            "tier": claims.tier,
            "method": row.method if row else "token",
            "created_at": rfc3339(row.created_at if row else claims.issued_at),
            "expires_at": rfc3339(row.expires_at if row else claims.expires_at),
            "elevated": self.now() < caller.elevated_until,
            "elevated_until": rfc3339(caller.elevated_until),
            "token": None,
            "token_expires_at": rfc3339(claims.expires_at),
        }

    def _with_cookie(self, response: Response, issued: IssuedToken) -> Response:
        response.set_cookie(
            SESSION_COOKIE,
            issued.token,
            max_age=max(0, issued.row.expires_at - int(self.now())),
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    def _issued(self, request: Request, issued: IssuedToken, status: int = 200) -> Response:
        return self._with_cookie(self._envelope(request, self._issued_view(issued), status), issued)

    # -- passkeys ----------------------------------------------------------------------

    async def registration_options(self, request: Request) -> Response:
        """A new user's first passkey, or one more for the signed-in user (then the session
        must be elevated once the user has a passkey: adding a key is sensitive)."""
        if presented_token(request) is not None:
            admitted = await self.admission.admit(request)
        else:
            admitted = None
            await self.admission.admit_anonymous(request)
        body = _object(await read_json(request), {"user_name": str})
        if admitted is None:
            user_id = new_id("usr")
        else:
            user_id = admitted.caller.user_id
            if await self.passkeys.has_any(user_id) and self.now() >= admitted.caller.elevated_until:
                raise DomainError(
                    "PERMISSION_DENIED", "adding a passkey needs a recent step-up (POST /api/sessions/step-up)"
                )
        user_name = body.get("user_name") or user_id
        if len(user_name) > MAX_USER_NAME:
            raise InvalidInput("user_name", f"user_name is longer than {MAX_USER_NAME} characters")
        options = await self.passkeys.registration_options(user_id, user_name)
        response = self._envelope(request, {"user_id": user_id, "options": options})
        return admitted.stamp(response) if admitted else response

    async def register(self, request: Request) -> Response:
        await self.admission.admit_anonymous(request)
        body = _object(await read_json(request), {"credential": dict}, ("credential",))
        passkey = await self.passkeys.register(body["credential"])
        return self._envelope(request, passkey_view(passkey), 201)

    async def assertion_options(self, request: Request) -> Response:
        await self.admission.admit_anonymous(request)
        _object(await read_json(request), {})
        return self._envelope(request, {"options": await self.passkeys.assertion_options()})

    # -- sessions ----------------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        await self.admission.admit_anonymous(request)
        body = _object(await read_json(request), {"credential": dict}, ("credential",))
        passkey = await self.passkeys.verify_assertion(body["credential"])
        issued = await self.sessions.start(passkey.user_id, PASSKEY, credential_id=passkey.credential_id, elevated=True)
        return self._issued(request, issued, 201)

    async def dev_login(self, request: Request) -> Response:
        await self.admission.admit_anonymous(request)
        if not self.settings.dev_login:
            raise DomainError("PERMISSION_DENIED", "the development login is off (MBT_DEV_LOGIN)")
        body = _object(await read_json(request), {"user_id": str}, ("user_id",))
        if not USER_ID.match(body["user_id"]):
            raise InvalidInput("user_id", "user_id must be 1-128 letters, digits, '_', '.', '@' or '-'")
        issued = await self.sessions.start(body["user_id"], DEV, elevated=False)
        return self._issued(request, issued, 201)

    async def current(self, request: Request) -> Response:
        admitted = await self.admission.admit(request)
        return admitted.stamp(self._envelope(request, self._current_view(admitted.caller)))

    async def refresh(self, request: Request) -> Response:
        """A new token for a session that still lives; the token presented may have expired
        (its session row is the authority)."""
        admitted = await self.admission.admit(request, allow_expired=True)
        _object(await read_json(request), {})
        if admitted.caller.session is None:
            raise DomainError("INVALID_ARGUMENT", "only a session's token can be refreshed; ask for a new token")
        return admitted.stamp(self._issued(request, await self.sessions.refresh(admitted.caller.session)))

    async def step_up(self, request: Request) -> Response:
        admitted = await self.admission.admit(request)
        body = _object(await read_json(request), {"credential": dict}, ("credential",))
        session = admitted.caller.session
        if session is None:
            raise DomainError("INVALID_ARGUMENT", "only a session can be stepped up")
        passkey = await self.passkeys.verify_assertion(body["credential"])
        if passkey.user_id != session.user_id:
            raise DomainError("UNAUTHENTICATED", "the passkey belongs to another user")
        return admitted.stamp(self._issued(request, await self.sessions.elevate(session)))

    async def sign_out(self, request: Request) -> Response:
        admitted = await self.admission.admit(request)
        session = admitted.caller.session
        if session is not None:
            await self.sessions.end(session.session_id)
        response = self._envelope(request, {"session_id": session.session_id if session else None, "ended": True})
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return admitted.stamp(response)

    def handlers(self) -> dict[str, dict[str, Handler]]:
        """Path -> HTTP method -> handler; ``openapi_paths`` describes the same table."""
        return {
            "/api/sessions": {"POST": self.sign_in},
            "/api/sessions/current": {"GET": self.current, "DELETE": self.sign_out},
            "/api/sessions/refresh": {"POST": self.refresh},
            "/api/sessions/step-up": {"POST": self.step_up},
            "/api/sessions/dev": {"POST": self.dev_login},
            "/api/sessions/passkeys/registration/options": {"POST": self.registration_options},
            "/api/sessions/passkeys/registration": {"POST": self.register},
            "/api/sessions/passkeys/assertion/options": {"POST": self.assertion_options},
        }

    def routes(self) -> list[Route]:
        return [
            Route(
                path,
                by_method({method: enveloped(handler) for method, handler in methods.items()}),
                methods=ALL_METHODS,
            )
            for path, methods in self.handlers().items()
        ]


def passkey_view(passkey: Passkey) -> dict:
    return {
        "credential_id": passkey.credential_id,
        "user_id": passkey.user_id,
        "created_at": passkey.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "backed_up": passkey.backed_up,
        "transports": list(passkey.transports),
    }
