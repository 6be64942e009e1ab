"""The OpenAPI 3.1 document of the REST surface, generated from what serves it.

Paths and operations come from the same ``google.api.http`` bindings as the routes
(``gateway.routes``); schemas follow the JSON rules of ``gateway.transcoding`` field by
field: proto field names, every output field present and null when unset, enums short
and lower-case, decimals as strings, RFC 3339 times, strict inputs (no unknown fields).
The session endpoints describe themselves (``gateway.session_api.OPERATIONS``).
Served unauthenticated at ``/api/mbt/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.bodies import MAX_BODY_BYTES
from gateway.identity import SESSION_COOKIE
from gateway.routes import Binding
from gateway.security_headers import CORS_EXPOSED_HEADERS
from gateway.session_api import OPERATIONS, SCHEMAS
from gateway.transcoding import (
    INPUT_DECIMAL_PATTERN,
    INT32_RANGE,
    INT64_RANGE,
    MAX_PATH_PARAM,
    MAX_REPEATED,
    MAX_STRING,
    default_json_name,
    enum_short_names,
)
from mbt.common.v1 import errors_pb2
from services.common.security.ratelimit import TIER_LIMITS
from services.common.wire.conv import is_decimal_field

OPENAPI_PATH = "/api/mbt/openapi.json"
REF = "#/components/schemas/"
OUTPUT_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
DURATION = r"^-?[0-9]+(\.[0-9]{1,9})?s$"
_UNSIGNED = (
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
)
_64_BIT = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
ERROR_STATUSES = {
    "400": "Malformed input (`invalid_argument`) or a refused precondition (`insufficient_buying_power`, …)",
    "401": "No session, or a token that is expired, forged, or signed out (`unauthenticated`)",
    "403": "Not allowed: foreign origin, wrong token scope (`permission_denied`)",
    "404": "No such entity for this user (`not_found`); another user's id is not found",
    "405": "Wrong method for this path (`method_not_allowed`)",
    "409": "Conflict (`conflict`, `already_exists`)",
    "413": f"Body over {MAX_BODY_BYTES} bytes (`payload_too_large`)",
    "414": "URL too long (`invalid_argument`)",
    "429": "Over the tier's per-minute budget (`rate_limited`); see `Retry-After`",
    "431": "Request headers too large (`invalid_argument`)",
    "500": "Unexpected fault (`internal`); quote the request id",
    "501": "In the contract, not implemented yet (`unimplemented`)",
    "503": "A kill switch or an unavailable dependency (`trading_disabled`, `unavailable`, …)",
    "504": "A service did not answer in time (`deadline_exceeded`)",
}


def error_codes() -> list[str]:
    """Every ``error.code`` the gateway can answer: the ErrorInfo reasons, and gRPC status
    names for failures that carry no reason."""
    reasons = {
        value.name.removeprefix("ERROR_REASON_").lower()
        for value in errors_pb2.ErrorReason.DESCRIPTOR.values
        if value.number
    }
    return sorted(reasons | {code.name.lower() for code in grpc.StatusCode})


def _nullable(schema: dict) -> dict:
    if "$ref" in schema or "anyOf" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if kind is None:
        raise ValueError(f"a schema without a type cannot be made nullable: {schema}")
    result = {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}
    if "enum" in schema:
        result["enum"] = [*schema["enum"], None]
    return result


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _required(field: FieldDescriptor) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def query_name(field: FieldDescriptor) -> str:
    """The documented query parameter name: a custom json_name (``from``) or the proto name."""
    return field.json_name if field.json_name != default_json_name(field.name) else field.name


class SchemaSet:
    """Component schemas, output and input variants, built on first use."""

    def __init__(self) -> None:
        self.components: dict[str, dict] = {}

    # -- shared ------------------------------------------------------------------------

    def special(self, name: str, *, output: bool) -> dict | None:
        if name == "google.protobuf.Timestamp":
            return {"type": "string", "format": "date-time", **({} if output else {"maxLength": 64})}
        if name == "google.protobuf.Duration":
            return {"type": "string", "pattern": DURATION}
        if name == "google.type.Date":
            return {"type": "string", "format": "date"}
        if name == "google.protobuf.Struct":
            return {"type": "object"}
        if name == "google.protobuf.ListValue":
            return {"type": "array"}
        if name == "google.protobuf.Value":
            return {}
        return None

    def _scalar(self, field: FieldDescriptor, *, output: bool) -> dict:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            if is_decimal_field(field):
                return {
                    "type": "string",
                    "pattern": OUTPUT_DECIMAL if output else INPUT_DECIMAL_PATTERN,
                    "examples": ["150.25"],
                }
            return {"type": "string"} if output else {"type": "string", "maxLength": MAX_STRING}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == FieldDescriptor.TYPE_ENUM:
            return {"type": "string", "enum": enum_short_names(field.enum_type)}
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        if kind in _UNSIGNED:
            return {
                "type": "integer",
                "minimum": 0,
                "format": "int64" if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64) else "int32",
            }
        low, high = INT64_RANGE if kind in _64_BIT else INT32_RANGE
        return {"type": "integer", "minimum": low, "maximum": high, "format": "int64" if kind in _64_BIT else "int32"}

    def value(self, field: FieldDescriptor, *, output: bool) -> dict:
        """One value of ``field``, as an item of a list or map or a present singular value."""
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.ref(field.message_type, output=output)
        return self._scalar(field, output=output)

    def ref(self, descriptor: Descriptor, *, output: bool) -> dict:
        special = self.special(descriptor.full_name, output=output)
        if special is not None:
            return special
        name = descriptor.full_name if output else descriptor.full_name + "Input"
        if name not in self.components:
            self.components[name] = {}  # reserve first: messages may be recursive
            self.components[name] = self._output_object(descriptor) if output else self._input_object(descriptor)
        return {"$ref": REF + name}

    # -- output: every field present, null when unset (transcoding.field_to_json) ------

    def output_field(self, field: FieldDescriptor) -> dict:
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            value = self.value(value_field, output=True)
            return {
                "type": "object",
                "additionalProperties": _nullable(value) if value_field.type == FieldDescriptor.TYPE_ENUM else value,
            }
        if field.is_repeated:
            item = self.value(field, output=True)
            return {"type": "array", "items": _nullable(item) if field.type == FieldDescriptor.TYPE_ENUM else item}
        if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
            return _nullable(self.value(field, output=True))
        return self.value(field, output=True)

    def _output_object(self, descriptor: Descriptor) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [field.name for field in descriptor.fields],
            "properties": {field.name: self.output_field(field) for field in descriptor.fields},
        }

    # -- input: strict, every field optional unless REQUIRED, null clears ---------------

    @staticmethod
    def settable(field: FieldDescriptor) -> bool:
        return field.type not in (FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)

    def input_field(self, field: FieldDescriptor) -> dict:
        if _is_map(field):
            return {
                "type": "object",
                "additionalProperties": self.value(field.message_type.fields_by_name["value"], output=False),
            }
        if field.is_repeated:
            return {"type": "array", "maxItems": MAX_REPEATED, "items": self.value(field, output=False)}
        return _nullable(self.value(field, output=False))

    def _input_object(self, descriptor: Descriptor, skip: frozenset[str] = frozenset()) -> dict:
        fields = [f for f in descriptor.fields if self.settable(f) and f.name not in skip]
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": {field.name: self.input_field(field) for field in fields},
        }
        required = [field.name for field in fields if _required(field)]
        return {**schema, "required": required} if required else schema

    def request_body(self, binding: Binding) -> dict:
        """The JSON body of ``binding``: the request without its path parameters, or one field."""
        if binding.body == "*":
            top_level_path_fields = frozenset(p for p in binding.path_params.values() if "." not in p)
            return self._input_object(binding.method.input_type, top_level_path_fields)
        return self.input_field(binding.method.input_type.fields_by_name[binding.body])


def _header(description: str, schema: dict | None = None) -> dict:
    return {"description": description, "schema": schema or {"type": "string"}}


RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header("Requests per minute the caller's tier allows", {"type": "integer"}),
    "X-RateLimit-Remaining": _header("Requests left in the current budget", {"type": "integer"}),
    "X-RateLimit-Reset": _header("Seconds until the budget is whole again", {"type": "integer"}),
}
REQUEST_ID_HEADER = {"X-Request-Id": _header("The request's id; quote it when reporting a problem")}


def error_responses(with_body: bool) -> dict:
    responses = {}
    for status, description in ERROR_STATUSES.items():
        if status == "413" and not with_body:
            continue
        headers = dict(REQUEST_ID_HEADER)
        if status == "429":
            headers.update(RATE_LIMIT_HEADERS)
            headers["Retry-After"] = _header("Seconds to wait before the next request fits", {"type": "integer"})
        responses[status] = {
            "description": description,
            "headers": headers,
            "content": {"application/json": {"schema": {"$ref": REF + "ErrorEnvelope"}}},
        }
    responses["default"] = {
        "description": "Any other failure, in the same envelope",
        "content": {"application/json": {"schema": {"$ref": REF + "ErrorEnvelope"}}},
    }
    return responses


def success(description: str, data: dict, meta_properties: dict | None = None, *, admitted: bool = True) -> dict:
    meta = {
        "type": "object",
        "additionalProperties": False,
        "required": [*(meta_properties or {}), "request_id"],
        "properties": {**(meta_properties or {}), "request_id": {"type": "string"}},
    }
    headers = {**REQUEST_ID_HEADER, **(RATE_LIMIT_HEADERS if admitted else {})}
    return {
        "description": description,
        "headers": headers,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["data", "meta"],
                    "properties": {"data": data, "meta": meta},
                }
            }
        },
    }


def _parameters(binding: Binding, schemas: SchemaSet) -> list[dict]:
    parameters = []
    for name in binding.path_params:
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_PARAM},
            }
        )
    if binding.body == "*":
        return parameters
    path_fields = set(binding.path_params.values())
    for field in binding.method.input_type.fields:
        if field.name in path_fields or field.name == binding.body or not schemas.settable(field):
            continue
        if (
            field.type == FieldDescriptor.TYPE_MESSAGE
            and schemas.special(field.message_type.full_name, output=False) is None
        ):
            continue  # nested messages are not set from the query string
        value = schemas.value(field, output=False)
        if field.is_repeated:
            parameters.append(
                {
                    "name": query_name(field),
                    "in": "query",
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "array", "maxItems": MAX_REPEATED, "items": value},
                }
            )
        else:
            parameters.append({"name": query_name(field), "in": "query", "schema": value})
    return parameters


def _operation(binding: Binding, schemas: SchemaSet) -> dict:
    response_fields = binding.method.output_type.fields
    if binding.response_body:
        data = schemas.output_field(binding.method.output_type.fields_by_name[binding.response_body])
        meta = {f.name: schemas.output_field(f) for f in response_fields if f.name != binding.response_body}
    else:
        data, meta = schemas.ref(binding.method.output_type, output=True), {}
    operation = {
        "operationId": f"{binding.service.name}.{binding.method.name}",
        "tags": [binding.upstream],
        "summary": f"{binding.method.name} ({binding.service.full_name})",
        "parameters": _parameters(binding, schemas),
        "responses": {"200": success("Success", data, meta), **error_responses(bool(binding.body))},
    }
    if binding.body:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": schemas.request_body(binding)}},
        }
    return operation


ERROR_ENVELOPE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string", "enum": error_codes()},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }
    },
}

DESCRIPTION = f"""MBT's REST API, generated from the gRPC contracts' `google.api.http` annotations.

**Envelopes.** Success is `{{"data": ..., "meta": {{...}}}}`; lists put `next_page_token` in `meta` (null
on the last page). Errors are `{{"error": {{"code", "message", "request_id"}}}}` where `code` is one of the
`ErrorEnvelope` codes. Every response carries `X-Request-Id`.

**JSON.** Proto field names; every output field is present, null when unset; enums short and
lower-case; money and quantities are decimal strings (`"150.25"`); times RFC 3339. Inputs are strict:
unknown fields, wrong types, bad enums are `invalid_argument`.

**Auth.** Sign in with a passkey (`POST /api/sessions`) or, in development, `POST /api/sessions/dev`; the
session token comes back in the `__Host-mbt_session` cookie (`HttpOnly; Secure; SameSite=Strict`) and in the
body, for clients that send it as `Authorization: Bearer`. State-changing requests from a foreign `Origin`
are refused.

**Rate limits.** Per user per minute: {", ".join(f"{tier} {limit}" for tier, limit in TIER_LIMITS.items())};
`X-RateLimit-*` on every signed-in response, 429 `rate_limited` with `Retry-After` past it.
CORS-exposed headers: {CORS_EXPOSED_HEADERS}."""


ENVIRONMENT = {"type": "string", "enum": ["development", "production"], "description": "MBT_ENV of the process"}


def build_openapi(api_bindings: list[Binding], session_paths: Mapping[str, Mapping[str, object]]) -> dict:
    """``session_paths`` is the session endpoints' path -> method table, which must match
    their declared ``OPERATIONS`` one for one."""
    schemas = SchemaSet()
    paths: dict[str, dict] = {}
    for binding in api_bindings:
        paths.setdefault(binding.starlette_path, {})[binding.http_method.lower()] = _operation(binding, schemas)
    declared = {(path, method) for path, method in OPERATIONS}
    served = {(path, method) for path, methods in session_paths.items() for method in methods}
    if declared != served:
        raise ValueError(f"session endpoints and their OpenAPI operations differ: {sorted(declared ^ served)}")
    for (path, method), operation in OPERATIONS.items():
        body = operation.get("request")
        entry = {
            "tags": ["sessions"],
            **{key: value for key, value in operation.items() if key not in ("request", "responses")},
        }
        entry["responses"] = {
            status: success(description, data) for status, (description, data) in operation["responses"].items()
        }
        entry["responses"].update(error_responses(body is not None))
        if body is not None:
            entry["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
        paths.setdefault(path, {})[method.lower()] = entry
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "tags": ["gateway"],
            "summary": "The gateway and its upstreams",
            "security": [],
            "responses": {
                status: success(description, {"$ref": REF + "Health"}, admitted=False)
                for status, description in (
                    ("200", "Every upstream serving, in the gateway's environment"),
                    ("503", "Some upstream not serving, or in another environment"),
                )
            },
        }
    }
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "openapi",
            "tags": ["gateway"],
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "headers": REQUEST_ID_HEADER,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    components = {
        "ErrorEnvelope": ERROR_ENVELOPE,
        "Health": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "environment", "upstreams"],
            "properties": {
                "status": {"type": "string", "enum": ["serving", "degraded"]},
                "environment": ENVIRONMENT,
                "upstreams": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["status", "environment"],
                        "properties": {
                            "status": {"type": "string"},
                            "environment": {
                                **ENVIRONMENT,
                                "type": ["string", "null"],
                                "enum": [*ENVIRONMENT["enum"], None],
                            },
                        },
                    },
                },
            },
        },
        **SCHEMAS,
        **dict(sorted(schemas.components.items())),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "MBT", "version": "v1", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"sessionCookie": []}, {"bearerToken": []}],
        "tags": [{"name": name} for name in sorted({b.upstream for b in api_bindings} | {"sessions", "gateway"})],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "The session cookie set by sign-in",
                },
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A session token (sign-in response body) or an `mbt token` token",
                },
            },
        },
    }
