"""``mbt.common.v1.UserRetention`` to and from ``services.common.retention.UserCutoff``."""

from __future__ import annotations

from collections.abc import Iterable

from mbt.common.v1 import retention_pb2
from services.common.errors import invalid_argument
from services.common.retention import UserCutoff
from services.common.wire.conv import from_timestamp, to_timestamp


def user_cutoffs_from_proto(messages: Iterable[retention_pb2.UserRetention]) -> list[UserCutoff]:
    """InvalidArgument (``users``) when a user id or a cutoff is missing."""
    cutoffs = []
    for message in messages:
        cutoff = from_timestamp(message.cutoff)
        if not message.user_id or cutoff is None:
            raise invalid_argument("each user needs a user_id and a cutoff", "users")
        cutoffs.append(UserCutoff(message.user_id, cutoff))
    return cutoffs


def user_cutoff_to_proto(cutoff: UserCutoff) -> retention_pb2.UserRetention:
    return retention_pb2.UserRetention(user_id=cutoff.user_id, cutoff=to_timestamp(cutoff.cutoff))
