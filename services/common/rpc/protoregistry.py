"""Access to every generated MBT message and service by name.

Importing the generated modules registers them in protobuf's default pool; the
gateway, the event sink and the access policy look messages and methods up there.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message


@functools.cache
def generated_modules() -> tuple:
    import mbt

    modules = []
    for info in pkgutil.walk_packages(mbt.__path__, "mbt."):
        if info.name.endswith("_pb2"):
            modules.append(importlib.import_module(info.name))
    return tuple(modules)


def files() -> list[FileDescriptor]:
    return [m.DESCRIPTOR for m in generated_modules()]


def services() -> list[ServiceDescriptor]:
    return [s for f in files() for s in f.services_by_name.values()]


@functools.cache
def message_class(full_name: str) -> type[Message]:
    generated_modules()
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(descriptor)
