"""Browser-facing protections on every response and every state-changing request.

* Headers: ``nosniff``, no framing (``X-Frame-Options`` and CSP ``frame-ancestors``), a
  CSP that lets a JSON API load nothing, no referrer, ``Cache-Control: no-store`` (API and
  session responses carry personal data and tokens), ``Strict-Transport-Security`` when
  ``MBT_HSTS_SECONDS`` is set.
* Hosts: a request whose ``Host`` is not one of ``MBT_ALLOWED_HOSTS`` is refused before
  anything runs (``/healthz`` excepted: probes address the pod). A DNS-rebinding page
  reaches the gateway under the attacker's host name, so it is refused here; nothing the
  gateway answers is built from ``Host`` (no host-derived redirect).
* Foreign origins: a POST/PUT/PATCH/DELETE whose ``Origin`` is not one of
  ``MBT_PUBLIC_ORIGINS`` / ``MBT_CORS_ORIGINS`` is refused before it reaches anything (CSRF
  defence in depth, on top of ``SameSite=Strict`` cookies). ``Origin`` is compared with
  configuration, never with ``Host``, which the client chooses. Requests without
  ``Origin`` (native clients, curl) are not browsers' cross-site requests.
* CORS: closed unless ``MBT_CORS_ORIGINS`` lists exact origins; those get credentialed
  CORS and answered preflights.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders

from gateway import errors
from services.common.config import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOST_CHECK_EXEMPT = frozenset({"/healthz"})
CORS_METHODS = "GET, POST, PATCH, DELETE"
CORS_REQUEST_HEADERS = "authorization, content-type, x-request-id"
CORS_EXPOSED_HEADERS = "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after"
CORS_MAX_AGE_SECONDS = 600


def host_name(host_header: str) -> str | None:
    """The host name of a ``Host`` header (``[::1]:8080`` -> ``::1``), None when malformed."""
    try:
        parts = urlsplit(f"//{host_header}")
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    return (parts.hostname or "").lower() or None


def response_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        "referrer-policy": "no-referrer",
        "cross-origin-resource-policy": "same-origin",
        "cache-control": "no-store",
    }
    if settings.hsts_seconds > 0:
        headers["strict-transport-security"] = f"max-age={settings.hsts_seconds}; includeSubDomains"
    return headers


class BrowserProtection:
    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.headers = response_headers(settings)
        self.cors_origins = frozenset(settings.cors_origins)
        self.trusted_origins = frozenset(settings.public_origins) | self.cors_origins
        self.allowed_hosts = frozenset(settings.allowed_hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        origin = request_headers.get("origin")
        cors = origin is not None and origin in self.cors_origins

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                if self.cors_origins:
                    headers.add_vary_header("Origin")
                if cors:
                    headers["access-control-allow-origin"] = origin
                    headers["access-control-allow-credentials"] = "true"
                    headers["access-control-expose-headers"] = CORS_EXPOSED_HEADERS
            await send(message)

        rid = scope.get("state", {}).get("request_id", "")
        if (
            scope["path"] not in HOST_CHECK_EXEMPT
            and host_name(request_headers.get("host", "")) not in self.allowed_hosts
        ):
            response = errors.error_response(
                400, "invalid_argument", "this gateway does not answer to that Host (MBT_ALLOWED_HOSTS)", rid
            )
            await response(scope, receive, send_with_headers)
            return
        method = scope["method"]
        if method == "OPTIONS" and origin is not None and "access-control-request-method" in request_headers:
            if cors:
                response = errors.empty_response(
                    204,
                    {
                        "access-control-allow-methods": CORS_METHODS,
                        "access-control-allow-headers": CORS_REQUEST_HEADERS,
                        "access-control-max-age": str(CORS_MAX_AGE_SECONDS),
                    },
                )
            else:
                response = errors.error_response(
                    403, "permission_denied", f"cross-origin requests from {origin[:100]!r} are not allowed", rid
                )
            await response(scope, receive, send_with_headers)
            return
        if method not in SAFE_METHODS and origin is not None and origin not in self.trusted_origins:
            response = errors.error_response(
                403, "permission_denied", f"state-changing requests from {origin[:100]!r} are not allowed", rid
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
