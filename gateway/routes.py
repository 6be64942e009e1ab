"""REST routes built from the ``google.api.http`` annotations of the contracts.

Nothing here names an endpoint: every binding comes from the descriptors, so adding
an annotated RPC to a proto adds its route (and its OpenAPI entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from services.common.rpc import protoregistry
from services.common.rpc.protoregistry import message_class

_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=\*)?\}")
HTTP_VERBS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Binding:
    """One REST binding of one RPC."""

    http_method: str
    template: str  # as annotated, e.g. /api/mbt/orders/{order_id}
    starlette_path: str  # with Starlette-safe parameter names
    path_params: dict[str, str]  # Starlette name -> request field path
    body: str  # "" none, "*" whole request, else one field
    response_body: str  # "" whole response, else the field that is `data`
    service: ServiceDescriptor
    method: MethodDescriptor

    @property
    def upstream(self) -> str:
        """The MBT service (settings name) that serves this RPC: mbt.<name>.v1.…"""
        return self.service.full_name.split(".")[1]

    @property
    def grpc_path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def request_class(self):
        return message_class(self.method.input_type.full_name)

    @property
    def response_class(self):
        return message_class(self.method.output_type.full_name)


def _rule_verb(rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    if pattern not in HTTP_VERBS:
        raise ValueError(f"unsupported HTTP rule pattern {pattern!r}")
    return pattern.upper(), getattr(rule, pattern)


def _binding(service, method, rule: http_pb2.HttpRule) -> Binding:
    verb, template = _rule_verb(rule)
    params: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        field_path = match.group(1)
        name = field_path.replace(".", "__")
        params[name] = field_path
        return "{" + name + "}"

    path = _VARIABLE.sub(replace, template)
    if re.search(r"\{[^}]*[=*/]", path):
        raise ValueError(f"unsupported path template {template!r} on {method.full_name}")
    return Binding(verb, template, path, params, rule.body, rule.response_body, service, method)


def bindings(services: list[ServiceDescriptor] | None = None) -> list[Binding]:
    result = []
    for service in services if services is not None else protoregistry.services():
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            for each in (rule, *rule.additional_bindings):
                result.append(_binding(service, method, each))
    return result


def by_path(all_bindings: list[Binding]) -> dict[str, dict[str, Binding]]:
    """Group bindings by Starlette path, then by HTTP method. Literal paths sort before
    templated ones so ``/quotes/{symbol}/history`` and ``/quotes/{symbol}`` never shadow a
    literal route."""
    grouped: dict[str, dict[str, Binding]] = {}
    for binding in all_bindings:
        methods = grouped.setdefault(binding.starlette_path, {})
        if binding.http_method in methods:
            raise ValueError(f"two RPCs bound to {binding.http_method} {binding.template}")
        methods[binding.http_method] = binding
    return dict(sorted(grouped.items(), key=lambda item: (item[0].count("{"), item[0])))
