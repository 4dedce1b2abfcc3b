"""API keys: random keys handed out once; only their SHA-256 hashes are stored.

``create_key`` makes a key for any backend; ``KeyRows`` is the SQLAlchemy store's part
that keeps them (``Store`` inherits it).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import StasoError
from .rows import SqlRows
from .schema import api_keys

if TYPE_CHECKING:
    from .base import StoreBackend

ROLES = ("agent", "approver", "admin")


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    created_at: float


def hash_key(key: str) -> str:
    # keys are 256 random bits, so a plain hash is enough (no password stretching needed)
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: StoreBackend, *, role: str, name: str) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the record and the key itself (shown once)."""
    if role not in ROLES:
        raise StasoError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or not name.strip():
        raise StasoError("a key needs a name (who or what uses it)")
    key = f"staso_{role}_{secrets.token_urlsafe(32)}"
    record = ApiKey(id="key_" + secrets.token_hex(8), name=name.strip(), role=role,
                    created_at=time.time())
    store.add_key(record, hash_key(key))
    return record, key


def _api_key(row: Any) -> ApiKey:
    return ApiKey(id=row.id, name=row.name, role=row.role, created_at=row.created_at)


class KeyRows(SqlRows):
    """The ``api_keys`` table, for the SQLAlchemy store."""


    def add_key(self, record: ApiKey, key_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(
                id=record.id, name=record.name, role=record.role, key_hash=key_hash,
                created_at=record.created_at))

    def key_by_hash(self, digest: str) -> tuple[ApiKey, str] | None:
        """The live key whose hash is ``digest`` (one indexed read), or None."""
        return self._live_key(api_keys.c.key_hash == digest)

    def key_by_id(self, key_id: str) -> tuple[ApiKey, str] | None:
        return self._live_key(api_keys.c.id == key_id)

    def _live_key(self, where: sa.ColumnElement[bool]) -> tuple[ApiKey, str] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(api_keys).where(
                where, api_keys.c.revoked_at.is_(None))).first()
        return None if row is None else (_api_key(row), row.key_hash)

    def live_keys(self) -> dict[str, tuple[ApiKey, str]]:
        """Every live key by its hash: the server's whole key table in one read, small
        enough to hold in memory (one entry per key an operator created)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(api_keys)
                                .where(api_keys.c.revoked_at.is_(None))).all()
        return {r.key_hash: (_api_key(r), r.key_hash) for r in rows}

    def list_keys(self) -> list[tuple[ApiKey, float | None]]:
        """Every key with when it was revoked (None: live), oldest first; never the key."""
        with self._read() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).all()
        return [(_api_key(r), r.revoked_at) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(api_keys.update().where(
                api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
            ).values(revoked_at=time.time())).rowcount)
