"""The gateway's own tables (its only ones) and repository: passkey credentials.

A passkey is a public key; nothing secret is stored. The gateway's database is its own
(``MBT_GATEWAY_DATABASE_URL``), migrated at start like every service's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, LargeBinary, MetaData, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.persistence.db import Database, changed
from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP
from services.common.persistence.user_data import UserTables, by_user_id

COMPONENT = "gateway"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


class PasskeyRow(Base):
    __tablename__ = "gateway_passkeys"

    # base64url of the raw credential id (at most 1023 bytes by the WebAuthn spec).
    credential_id: Mapped[str] = mapped_column(String(1400), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    # COSE-encoded public key.
    credential_public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's signature counter: an assertion must raise it (a clone would not).
    sign_count: Mapped[int] = mapped_column(BigInteger)
    transports: Mapped[str] = mapped_column(String(128))
    aaguid: Mapped[str] = mapped_column(String(36))
    backed_up: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


# GDPR export and erasure (services.common.persistence.user_data). Sessions live in shared
# state, not here; they are refused once the user is gone.
USER_TABLES = UserTables(COMPONENT, [by_user_id(PasskeyRow.__table__)])


@dataclass(frozen=True)
class Passkey:
    credential_id: str
    user_id: str
    credential_public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None


def _passkey(row: PasskeyRow) -> Passkey:
    return Passkey(
        row.credential_id,
        row.user_id,
        bytes(row.credential_public_key),
        row.sign_count,
        tuple(t for t in row.transports.split(",") if t),
        row.aaguid,
        row.backed_up,
        row.created_at,
        row.last_used_at,
    )


class PasskeyRepository:
    """Passkeys, each call its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, passkey: Passkey) -> bool:
        """False when the credential id is already registered (to anyone)."""
        async with self.db.writing() as session:
            if await session.get(PasskeyRow, passkey.credential_id) is not None:
                return False
            session.add(
                PasskeyRow(
                    credential_id=passkey.credential_id,
                    user_id=passkey.user_id,
                    credential_public_key=passkey.credential_public_key,
                    sign_count=passkey.sign_count,
                    transports=",".join(passkey.transports),
                    aaguid=passkey.aaguid,
                    backed_up=passkey.backed_up,
                    created_at=passkey.created_at,
                    last_used_at=passkey.last_used_at,
                )
            )
            return True

    async def get(self, credential_id: str) -> Passkey | None:
        async with self.db.reading() as session:
            row = await session.get(PasskeyRow, credential_id)
            return None if row is None else _passkey(row)

    async def for_user(self, user_id: str) -> list[Passkey]:
        """The user's passkeys, oldest first."""
        async with self.db.reading() as session:
            rows = (
                await session.scalars(
                    select(PasskeyRow).where(PasskeyRow.user_id == user_id).order_by(PasskeyRow.created_at)
                )
            ).all()
            return [_passkey(row) for row in rows]

    async def record_use(self, passkey: Passkey, new_sign_count: int, used_at: datetime) -> bool:
        """Store the new counter only if nobody used the credential since it was read: of
        two concurrent assertions with one counter value, one loses."""
        async with self.db.writing() as session:
            result = await session.execute(
                update(PasskeyRow)
                .where(PasskeyRow.credential_id == passkey.credential_id, PasskeyRow.sign_count == passkey.sign_count)
                .values(sign_count=new_sign_count, last_used_at=used_at)
            )
            return changed(result).rowcount == 1
