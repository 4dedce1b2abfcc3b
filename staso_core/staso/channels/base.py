"""What an approval channel is. A channel class names its ``scheme`` (the ``slack`` of
``slack:#payments``), checks addresses when a policy loads, and, once ``staso serve``
configures it from the environment, posts escalations and (if it can) updates its posts
when they are answered. Delivery is the outbox's job: a channel only says what happened,
raising ``DeliveryError`` when it failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..models import Escalation
    from ..store import StoreBackend


class DeliveryError(Exception):
    """A post or update that did not happen. ``retry``: whether trying again may help (a
    network error or a rate limit may pass; a channel that does not exist will not).
    ``after``: seconds the channel asked to wait (Slack's Retry-After). ``code``:
    the channel's own error code, where it gave one (Slack's ``invalid_blocks``)."""

    def __init__(self, message: str, *, retry: bool = True, after: float | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.retry, self.after, self.code = retry, after, code


@dataclass(frozen=True)
class ChannelContext:
    """What a configured channel may use: the server's public address (links into the
    dashboard and answer pages; None if STASO_PUBLIC_URL is unset) and its store."""

    public_url: str | None
    store: StoreBackend

    def dashboard_link(self, escalation_id: str) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url}/?escalation={escalation_id}"


class Channel:
    """Subclass and return the class from ``staso_channels``."""

    scheme: ClassVar[str] = ""
    updates: ClassVar[bool] = False  # posts are updated in place once answered

    @staticmethod
    def check_address(address: str) -> str:
        """The address as this channel keeps it; ValueError with a message if malformed."""
        return address

    @classmethod
    def from_env(cls, env: Mapping[str, str], context: ChannelContext) -> Channel | None:
        """The channel as the environment configures it, or None if it does not; a
        StasoError if half-configured (a token without its secret)."""
        return None

    def defaults(self) -> list[str]:
        """Addresses for escalations whose rule names no ``notify:`` targets."""
        return []

    def post(self, address: str, escalation: Escalation) -> dict[str, Any] | None:
        """Announce an escalation as it now stands; return what ``update`` needs."""
        raise NotImplementedError

    def update(self, address: str, escalation: Escalation, ref: dict[str, Any]) -> None:
        """Show an answered escalation where ``post`` put it (``ref``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of connections (the server is stopping)."""
