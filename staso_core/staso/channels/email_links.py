"""The e-mail channel's answer links: ``{escalation_id}.{key_id}.{action}.{signature}``.

The signature is HMAC-SHA256 over the other three parts and the address the key answers
as, keyed by the approver key's stored hash: secret to the server, shared by every replica
through the database, and gone when the key is revoked, so revoking a key (or linking it
to another address) kills every link sent for it. A link is bound to one escalation, one
approver and one action; it needs no table until it is used, when ``use_once`` records it
(``email_routes.py``). Nothing in a link is secret but the signature, and nothing in it
is trusted before the signature is checked, in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from ..store.keys import ApiKey

# the action in a link and the status it answers with
ACTIONS = {"approve": "approved", "deny": "denied"}
_ID = r"[A-Za-z0-9_\-]{1,64}"
_TOKEN = re.compile(rf"({_ID})\.({_ID})\.(approve|deny)\.([A-Za-z0-9_\-]{{43}})")
_DOMAIN = "staso-email-link:v1"


@dataclass(frozen=True)
class Link:
    """A link's parts as written, not yet verified."""

    escalation_id: str
    key_id: str
    action: str
    signature: str

    @property
    def status(self) -> str:
        return ACTIONS[self.action]


def _signature(key_hash: str, escalation_id: str, key_id: str, action: str,
               email: str) -> str:
    message = f"{_DOMAIN}\n{escalation_id}\n{key_id}\n{action}\n{email.lower()}"
    mac = hmac.new(key_hash.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def make(escalation_id: str, key: ApiKey, key_hash: str, action: str) -> str:
    """The token of a link that answers ``action`` on one escalation as ``key``, for the
    address ``key.email``."""
    if action not in ACTIONS:
        raise ValueError(f"action must be approve or deny, not {action!r}")
    if not key.email:
        raise ValueError(f"key {key.id} is linked to no e-mail address")
    signature = _signature(key_hash, escalation_id, key.id, action, key.email)
    return f"{escalation_id}.{key.id}.{action}.{signature}"


def parse(token: str) -> Link | None:
    """The parts of a token that has a link's shape; None if it has not."""
    found = _TOKEN.fullmatch(token)
    return None if found is None else Link(*found.groups())


def verify(link: Link, key: ApiKey, key_hash: str) -> bool:
    """Whether ``link`` was signed for ``key`` as it now stands: its id, a role that
    answers, and the address it is linked to."""
    if key.id != link.key_id or key.role not in ("approver", "admin") or not key.email:
        return False
    expected = _signature(key_hash, link.escalation_id, link.key_id, link.action, key.email)
    return hmac.compare_digest(expected, link.signature)


def digest(link: Link) -> str:
    """What ``use_once`` records of a used link (never the link itself)."""
    return hashlib.sha256(f"email:{link.escalation_id}.{link.key_id}.{link.action}."
                          f"{link.signature}".encode()).hexdigest()
