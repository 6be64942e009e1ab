"""JSON <-> protobuf for the REST surface, driven by descriptors.

Output: proto field names; enums short and lower-case (``ORDER_TYPE_STOP_LIMIT`` ->
``stop_limit``, unspecified -> null); Timestamps RFC 3339; dates ``YYYY-MM-DD``; empty
strings and unset messages null; every field present so a response has one shape.

Input is strict: unknown fields, wrong JSON types, bad enum names, out-of-range
integers, malformed times and malformed decimal strings are ``InvalidInput`` naming the
field — never a crash. Decimal values travel as strings in plain notation ("150.25", at
most as many digits as ``services.common.wire.conv`` accepts; "" means unset); what they mean
(a positive quantity, a price on the tick) is checked by the services.
"""

from __future__ import annotations

import base64
import re
from datetime import date
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message
from google.type import date_pb2

from services.common.errors import DomainError
from services.common.wire.conv import DECIMAL_PATTERN, is_decimal_field, parse_decimal

INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
MAX_STRING = 4096
# Path parameters are ids and symbols: short, always.
MAX_PATH_PARAM = 256
MAX_REPEATED = 1000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# What a decimal field accepts on input, for the OpenAPI document ("" means unset).
INPUT_DECIMAL_PATTERN = rf"^({DECIMAL_PATTERN})?$"

_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32: INT32_RANGE,
    FieldDescriptor.TYPE_SINT32: INT32_RANGE,
    FieldDescriptor.TYPE_SFIXED32: INT32_RANGE,
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: INT64_RANGE,
    FieldDescriptor.TYPE_SINT64: INT64_RANGE,
    FieldDescriptor.TYPE_SFIXED64: INT64_RANGE,
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


class InvalidInput(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -- enums -------------------------------------------------------------------------


def enum_prefix(enum: EnumDescriptor) -> str:
    """ORDER_TYPE_ for OrderType."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def enum_short_name(enum: EnumDescriptor, number: int) -> str | None:
    value = enum.values_by_number.get(number)
    if value is None or number == 0:
        return None
    return value.name.removeprefix(enum_prefix(enum)).lower()


def enum_short_names(enum: EnumDescriptor) -> list[str]:
    return [n for v in enum.values if (n := enum_short_name(enum, v.number))]


def _enum_number(enum: EnumDescriptor, raw: Any, path: str) -> int:
    if not isinstance(raw, str):
        raise InvalidInput(path, f"{path} must be one of: {', '.join(enum_short_names(enum))}")
    wanted = raw.strip().lower()
    for value in enum.values:
        if value.number and wanted in (value.name.lower(), enum_short_name(enum, value.number)):
            return value.number
    raise InvalidInput(path, f"{path} must be one of: {', '.join(enum_short_names(enum))}; got {raw[:64]!r}")


# -- output ------------------------------------------------------------------------

_MISSING = object()


def _special_to_json(message: Message) -> Any:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return message.ToJsonString()
    if name == "google.protobuf.Duration":
        return message.ToJsonString()
    if name == "google.type.Date":
        return f"{message.year:04d}-{message.month:02d}-{message.day:02d}"
    if name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
        return MessageToDict(message)
    return _MISSING


SPECIAL_TYPES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.type.Date",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
}


def _value_to_json(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_json(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_short_name(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def field_to_json(message: Message, field: FieldDescriptor) -> Any:
    value = getattr(message, field.name)
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        return {str(k): _value_to_json(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_value_to_json(field, v) for v in value]
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_json(value) if message.HasField(field.name) else None
    if field.type == FieldDescriptor.TYPE_STRING and value == "":
        return None
    return _value_to_json(field, value)


def message_to_json(message: Message) -> Any:
    special = _special_to_json(message)
    if special is not _MISSING:
        return special
    return {field.name: field_to_json(message, field) for field in message.DESCRIPTOR.fields}


# -- input -------------------------------------------------------------------------


def default_json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def field_names(field: FieldDescriptor) -> set[str]:
    """Names a client may use for a field: the proto name, its lowerCamel form, a custom json_name."""
    return {field.name, field.json_name, default_json_name(field.name)}


def find_field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    for field in descriptor.fields:
        if name in field_names(field):
            return field
    return None


def _parse_special(message: Message, raw: Any, path: str) -> bool:
    name = message.DESCRIPTOR.full_name
    if name not in SPECIAL_TYPES:
        return False
    if name == "google.protobuf.Timestamp":
        message.CopyFrom(parse_timestamp(raw, path))
    elif name == "google.protobuf.Duration":
        if not isinstance(raw, str):
            raise InvalidInput(path, f'{path} must be a duration string like "1.5s"')
        try:
            message.FromJsonString(raw)
        except ValueError:
            raise InvalidInput(path, f'{path} must be a duration string like "1.5s"') from None
    elif name == "google.type.Date":
        message.CopyFrom(parse_date(raw, path))
    else:
        try:
            ParseDict(raw, message)
        except (ParseError, TypeError, ValueError):
            raise InvalidInput(path, f"{path} must be a JSON {name.rsplit('.', 1)[-1].lower()}") from None
    return True


def parse_timestamp(raw: Any, path: str) -> timestamp_pb2.Timestamp:
    """RFC 3339 (``2012-06-21T13:30:00Z``), or a date meaning its midnight UTC."""
    if not isinstance(raw, str) or len(raw) > 64:
        raise InvalidInput(path, f'{path} must be an RFC 3339 time like "2012-06-21T13:30:00Z"')
    text = raw.strip()
    if _DATE.match(text):
        text += "T00:00:00Z"
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromJsonString(text)
    except ValueError:
        raise InvalidInput(
            path, f'{path} must be an RFC 3339 time like "2012-06-21T13:30:00Z"; got {raw[:64]!r}'
        ) from None
    return ts


def parse_date(raw: Any, path: str) -> date_pb2.Date:
    if not isinstance(raw, str) or not _DATE.match(raw.strip()):
        raise InvalidInput(path, f'{path} must be a date like "2023-09-15"')
    try:
        value = date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(path, f"{path} is not a valid date: {raw[:16]!r}") from None
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _scalar(field: FieldDescriptor, raw: Any, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(raw, str):
            hint = ' (decimal values are sent as strings, e.g. "10")' if isinstance(raw, (int, float)) else ""
            raise InvalidInput(path, f"{path} must be a string{hint}")
        if len(raw) > MAX_STRING:
            raise InvalidInput(path, f"{path} is too long")
        if is_decimal_field(field):
            try:
                parse_decimal(raw, path)
            except DomainError as exc:
                raise InvalidInput(path, exc.message) from None
        return raw
    if kind in _INTEGER_TYPES:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise InvalidInput(path, f"{path} must be an integer")
        try:
            value = int(raw) if isinstance(raw, int) else int(raw.strip(), 10)
        except ValueError:
            raise InvalidInput(path, f"{path} must be an integer") from None
        low, high = _INTEGER_TYPES[kind]
        if not low <= value <= high:
            raise InvalidInput(path, f"{path} is out of range")
        return value
    if kind == FieldDescriptor.TYPE_BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
            return raw.lower() in ("true", "1")
        raise InvalidInput(path, f"{path} must be true or false")
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum_number(field.enum_type, raw, path)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        raise InvalidInput(path, f"{path} is not supported")  # no float fields exist in the contracts
    raise InvalidInput(path, f"{path} cannot be set through REST")


def set_field(message: Message, field: FieldDescriptor, raw: Any, path: str) -> None:
    if _is_map(field):
        if not isinstance(raw, dict):
            raise InvalidInput(path, f"{path} must be an object")
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        target = getattr(message, field.name)
        for key, value in raw.items():
            key = _scalar(key_field, key, f"{path}.{key}")
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                json_to_message(value, target[key], f"{path}.{key}")
            else:
                target[key] = _scalar(value_field, value, f"{path}.{key}")
        return
    if field.is_repeated:
        if not isinstance(raw, list):
            raise InvalidInput(path, f"{path} must be an array")
        if len(raw) > MAX_REPEATED:
            raise InvalidInput(path, f"{path} has too many items")
        target = getattr(message, field.name)
        for index, item in enumerate(raw):
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                json_to_message(item, target.add(), f"{path}[{index}]")
            else:
                target.append(_scalar(field, item, f"{path}[{index}]"))
        return
    if raw is None:
        message.ClearField(field.name)
        return
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        json_to_message(raw, getattr(message, field.name), path)
        return
    setattr(message, field.name, _scalar(field, raw, path))


def json_to_message(data: Any, message: Message, path: str = "") -> Message:
    if _parse_special(message, data, path or "body"):
        return message
    if not isinstance(data, dict):
        raise InvalidInput(path or "body", f"{path or 'the request body'} must be a JSON object")
    for key, raw in data.items():
        field = find_field(message.DESCRIPTOR, key)
        child = f"{path}.{key}" if path else str(key)
        if field is None:
            raise InvalidInput(child, f"unknown field {child!r}")
        set_field(message, field, raw, child)
    return message


def set_path(message: Message, dotted: str, raw: Any, *, from_query: bool) -> None:
    """Set ``a.b.c`` on ``message`` from a path or query parameter (strings)."""
    if not from_query and len(raw) > MAX_PATH_PARAM:
        raise InvalidInput(dotted, f"{dotted} is longer than {MAX_PATH_PARAM} characters")
    parts = dotted.split(".")
    target = message
    for index, part in enumerate(parts):
        field = find_field(target.DESCRIPTOR, part)
        if field is None:
            raise InvalidInput(dotted, f"unknown parameter {dotted!r}")
        if index < len(parts) - 1:
            if field.type != FieldDescriptor.TYPE_MESSAGE or field.is_repeated:
                raise InvalidInput(dotted, f"unknown parameter {dotted!r}")
            target = getattr(target, field.name)
            continue
        if from_query and field.is_repeated and field.type != FieldDescriptor.TYPE_MESSAGE:
            values = [piece for item in raw for piece in item.split(",") if piece != ""]
            set_field(target, field, values, dotted)
        elif from_query and field.is_repeated:
            raise InvalidInput(dotted, f"{dotted} cannot be set from the query string")
        else:
            value = raw[-1] if isinstance(raw, list) else raw
            if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in SPECIAL_TYPES:
                raise InvalidInput(dotted, f"{dotted} cannot be set from the query string")
            set_field(target, field, value, dotted)
