"""The e-mail channel's answer links: ``STASO_PUBLIC_URL/v1/channels/email/{token}``.

A token is 256 random bits; the database keeps only its SHA-256, with what it answers:
one escalation, one approver key as linked to one address, one action, until the
escalation's expiry (``store/links.py``). So a link cannot be made by anyone who reads the
database (as an API key cannot), nor turned into another escalation's or action's; it
ends when used, when its key is revoked, or when its key is linked to another address.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from ..models import Escalation
from ..store import StoreBackend
from ..store.keys import ApiKey
from ..store.links import AnswerLink

# the action in a link and the status it answers with
ACTIONS = {"approve": "approved", "deny": "denied"}
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{43}")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make(store: StoreBackend, escalation: Escalation, key: ApiKey, action: str) -> str:
    """A new link's token, answering ``action`` on ``escalation`` as ``key`` (for the
    address ``key.email``); only its hash is stored."""
    if action not in ACTIONS:
        raise ValueError(f"action must be approve or deny, not {action!r}")
    if not key.email:
        raise ValueError(f"key {key.id} is linked to no e-mail address")
    token = secrets.token_urlsafe(32)
    store.add_answer_link(AnswerLink(
        id=digest(token), escalation_id=escalation.id, key_id=key.id, email=key.email,
        action=action, created_at=time.time(), expires_at=escalation.expires_at))
    return token


def find(store: StoreBackend, token: str) -> AnswerLink | None:
    """The link a token is, if it has a token's shape and was made here; None if not."""
    return store.answer_link(digest(token)) if _TOKEN.fullmatch(token) else None


def answers_as(link: AnswerLink, key: ApiKey) -> bool:
    """Whether ``key`` (live, as it now stands) may still answer with ``link``: the same
    key, a role that answers, linked to the same address."""
    return key.id == link.key_id and key.role in ("approver", "admin") and \
        (key.email or "") == link.email
