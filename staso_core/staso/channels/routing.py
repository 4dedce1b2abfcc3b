"""Which channels an escalation goes to: its rule's ``notify:`` targets, or else every
configured channel's defaults (``STASO_SLACK_CHANNEL``, ``STASO_EMAIL_TO``)."""

from __future__ import annotations

from ..models import Escalation
from .base import Channel


def targets(escalation: Escalation, channels: dict[str, Channel]) -> list[str]:
    """``scheme:address`` targets, each once. A rule's target on a channel this server
    has not configured is kept: its delivery fails, visibly, rather than vanishing."""
    if escalation.notify is not None:
        return list(dict.fromkeys(escalation.notify))
    return list(dict.fromkeys(f"{scheme}:{address}" for scheme, channel in channels.items()
                              for address in channel.defaults()))
