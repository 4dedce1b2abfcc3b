"""API keys: random keys handed out once; only their SHA-256 hashes are stored.

``create_key`` makes a key for any backend; ``KeyRows`` is the SQLAlchemy store's part
that keeps them (``Store`` inherits it).
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..approvers import check_group
from ..errors import StasoError
from .escaping import escape_text, unescape_text
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
    # an agent key's agent names (a glob such as "billing-*"); None: any agent name (keys
    # made before keys were bound, admin and approver keys)
    agents: str | None = None
    # approver and admin keys: the Slack user id (U…) and the e-mail address that answer
    # escalations as this key in the approval channels
    slack_user: str | None = None
    email: str | None = None
    groups: tuple[str, ...] = ()  # approver groups, for rules' ``approvers: [group:…]``

    def may_act_for(self, agent_name: str) -> bool:
        """Whether this key may send calls (and use up approvals) as ``agent_name``."""
        return self.agents is None or _agent_glob(self.agents).fullmatch(agent_name) is not None


@functools.lru_cache(maxsize=256)
def _agent_glob(pattern: str) -> re.Pattern[str]:
    # fnmatchcase: case matters ("Bot" is not "bot"), and no path rules apply
    return re.compile(fnmatch.translate(pattern), re.DOTALL)


def hash_key(key: str) -> str:
    # keys are 256 random bits, so a plain hash is enough (no password stretching needed)
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: StoreBackend, *, role: str, name: str, agents: str | None = None,
               slack_user: str | None = None, email: str | None = None,
               groups: Iterable[str] = ()) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the record and the key itself (shown once). An agent
    key acts for the agent names ``agents`` matches (a glob; default: exactly its name).
    An approver or admin key may name the Slack user and e-mail address that answer as it,
    and the approver groups it belongs to."""
    if role not in ROLES:
        raise StasoError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or not name.strip():
        raise StasoError("a key needs a name (who or what uses it)")
    if role == "agent":
        # by default exactly its own name (escaped: a name may hold glob characters)
        agents = check_agents(glob.escape(name.strip()) if agents is None else agents)
    elif agents is not None:
        raise StasoError(f"only agent keys are bound to agent names; {role} keys are not")
    slack_user, email = check_links(role, slack_user, email)
    groups = check_groups(role, groups)
    _not_linked_yet(store, slack_user, email)
    key = f"staso_{role}_{secrets.token_urlsafe(32)}"
    record = ApiKey(id="key_" + secrets.token_hex(8), name=name.strip(), role=role,
                    created_at=time.time(), agents=agents, slack_user=slack_user, email=email,
                    groups=groups)
    store.add_key(record, hash_key(key))
    return record, key


def check_agents(pattern: str) -> str:
    """An agent-name glob as keys keep it; StasoError if it is empty."""
    if not pattern or not pattern.strip():
        raise StasoError("--agent needs a pattern of agent names, such as billing-bot or "
                         "billing-*")
    return pattern.strip()


_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,30}")
# an address every mail library takes as it is: a plain local part (RFC 5322 atext and
# dots) and a host name (no comments, groups, quoting, literal addresses or trailing dot)
EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                   r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


def is_address(text: str) -> bool:
    """Whether ``text`` is one such address (and holds no RFC 2047 encoded word, which a
    mail library would decode into something else)."""
    return EMAIL.fullmatch(text) is not None and "=?" not in text


def check_links(role: str, slack_user: str | None, email: str | None
                ) -> tuple[str | None, str | None]:
    """A Slack user id and an e-mail address as keys keep them (StasoError if malformed):
    only people answer in the channels, so only approver and admin keys have them."""
    slack_user = slack_user.strip() if slack_user else None
    email = email.strip().lower() if email else None
    if (slack_user or email) and role not in ("approver", "admin"):
        raise StasoError(f"only approver and admin keys answer in Slack or by e-mail; "
                         f"{role} keys do not")
    if slack_user and not _SLACK_USER.fullmatch(slack_user):
        raise StasoError(f"--slack-user takes a Slack member id such as U024BE7LH (in Slack: "
                         f"the profile's ⋮ menu, Copy member ID), not {slack_user!r}")
    if email and not is_address(email):
        raise StasoError(f"--email takes one address such as alice@example.com, not {email!r}")
    return slack_user, email


def check_groups(role: str, groups: Iterable[str]) -> tuple[str, ...]:
    """Approver groups as keys keep them (StasoError if malformed or not a person's key)."""
    checked = tuple(dict.fromkeys(check_group(g) for g in groups))
    if checked and role not in ("approver", "admin"):
        raise StasoError(f"only approver and admin keys belong to approver groups; "
                         f"{role} keys do not")
    return checked


def _not_linked_yet(store: StoreBackend, slack_user: str | None, email: str | None,
                    but: str | None = None) -> None:
    """StasoError if a live key (other than ``but``) already answers as this Slack user or
    address: one person answers as one key, so whose answer it was is never in doubt (and
    revoking a key never quietly hands its person another key's name)."""
    for kind, value in (("slack_user", slack_user), ("email", email)):
        found = store.key_for_person(**{kind: value}) if value else None
        if found is not None and found[0].id != but:
            flag = "--slack-user" if kind == "slack_user" else "--email"
            raise StasoError(f"{flag} {value} already answers as key {found[0].id} "
                             f"({found[0].name}); revoke that key first")


def _api_key(row: Any) -> ApiKey:
    return ApiKey(id=row.id, name=unescape_text(row.name), role=row.role,
                  created_at=row.created_at, agents=unescape_text(row.agents),
                  slack_user=row.slack_user, email=row.email, groups=tuple(row.groups or ()))


class KeyRows(SqlRows):
    """The ``api_keys`` table, for the SQLAlchemy store."""


    def add_key(self, record: ApiKey, key_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(
                id=record.id, name=escape_text(record.name), role=record.role, key_hash=key_hash,
                created_at=record.created_at, agents=escape_text(record.agents),
                slack_user=record.slack_user, email=record.email,
                groups=list(record.groups) or None))

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

    def bind_key(self, key_id: str, agents: str) -> bool:
        c = api_keys.c
        with self.engine.begin() as conn:
            return bool(conn.execute(api_keys.update().where(
                c.id == key_id, c.role == "agent", c.revoked_at.is_(None)
            ).values(agents=escape_text(check_agents(agents)))).rowcount)

    def link_key(self, key_id: str, *, slack_user: str | None = None,
                 email: str | None = None) -> bool:
        """Let a Slack user or an e-mail address answer as this live approver or admin key;
        False if there is none with this id."""
        c = api_keys.c
        slack_user, email = check_links("approver", slack_user, email)
        values = {k: v for k, v in (("slack_user", slack_user), ("email", email)) if v}
        if not values:
            raise StasoError("give --slack-user, --email or both")
        _not_linked_yet(self, slack_user, email, but=key_id)  # type: ignore[arg-type]
        with self.engine.begin() as conn:
            linked = bool(conn.execute(api_keys.update().where(
                c.id == key_id, c.role.in_(("approver", "admin")), c.revoked_at.is_(None)
            ).values(**values)).rowcount)
        if linked and email:  # its links to the old address answer nothing from now on
            self.withdraw_answer_links(key_id)  # type: ignore[attr-defined]
        return linked

    def set_groups(self, key_id: str, groups: Iterable[str]) -> bool:
        """Replace the approver groups of this live approver or admin key; False if there
        is none with this id."""
        c = api_keys.c
        checked = check_groups("approver", groups)
        with self.engine.begin() as conn:
            return bool(conn.execute(api_keys.update().where(
                c.id == key_id, c.role.in_(("approver", "admin")), c.revoked_at.is_(None)
            ).values(groups=list(checked) or None)).rowcount)

    def approver_named(self, name: str) -> tuple[str, ...]:
        """The groups of the live approver and admin keys with this name (embedded mode's
        approver is the ``by`` given, with its namesake keys' groups)."""
        c = api_keys.c
        with self._read() as conn:
            rows = conn.execute(sa.select(c.groups).where(
                c.name == escape_text(name), c.role.in_(("approver", "admin")),
                c.revoked_at.is_(None))).all()
        return tuple(dict.fromkeys(g for r in rows for g in (r.groups or ())))

    def key_for_person(self, *, slack_user: str | None = None, email: str | None = None
                       ) -> tuple[ApiKey, str] | None:
        """The live approver or admin key a Slack user or an e-mail address answers as (the
        newest, if several name it), with its hash; None if it answers as none."""
        c = api_keys.c
        where = c.slack_user == slack_user if slack_user else c.email == (email or "").lower()
        with self._read() as conn:
            row = conn.execute(sa.select(api_keys).where(
                where, c.role.in_(("approver", "admin")), c.revoked_at.is_(None)
            ).order_by(c.created_at.desc()).limit(1)).first()
        return None if row is None else (_api_key(row), row.key_hash)
