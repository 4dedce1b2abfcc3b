"""The Slack channel: escalations posted with ``chat.postMessage`` and updated in place with
``chat.update`` once answered anywhere; modals opened with ``views.open``.

Built on ``slack_sdk``'s ``WebClient`` (Slack's own client: its request format, errors and
retry of dropped connections, kept up to date by Slack) rather than hand-written HTTP.
Answers come back to ``slack_routes.py``.

Configuration: ``STASO_SLACK_BOT_TOKEN`` (xoxb-…), ``STASO_SLACK_SIGNING_SECRET``,
``STASO_SLACK_CHANNEL`` (the default channel), ``STASO_SLACK_API_URL`` (default Slack's Web
API; tests point it at a local stand-in).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import StasoError, install_extra
from ..models import Escalation
from . import slack_blocks
from .base import Channel, ChannelContext, DeliveryError

if TYPE_CHECKING:
    from slack_sdk import WebClient

log = logging.getLogger("staso.channels")
DEFAULT_API_URL = "https://slack.com/api/"
# Slack answers a click only if staso answers within 3 s: the calls made while answering
# one (a modal, a private note) get a client of their own with a short timeout, on threads
# of their own, so a slow Slack never holds the threads guard calls and /healthz use
ANSWER_TIMEOUT = 2  # seconds (a whole number: slack_sdk types it so)
ANSWER_THREADS = 4
NOTES_QUEUED_AT_MOST = 64  # private notes waiting beyond this are dropped (and logged)
# Slack refused the blocks themselves: the post goes again as plain text with a link
_BLOCKS_REFUSED = {"invalid_blocks", "invalid_blocks_format", "msg_too_long"}
# a channel by name (#payments), or by id: C… (channel), G… (private), D… (DM), U…/W… (a
# person: Slack opens a DM)
_ADDRESS = re.compile(r"#[a-z0-9][a-z0-9_\-]{0,79}|[CGDUW][A-Z0-9]{2,30}")
# errors that no retry mends: the token, the channel or the app's scopes are wrong
_PERMANENT = {"channel_not_found", "not_in_channel", "is_archived", "invalid_auth",
              "account_inactive", "token_revoked", "token_expired", "no_permission",
              "missing_scope", "not_authed", "invalid_blocks", "invalid_blocks_format",
              "msg_too_long", "restricted_action", "message_not_found", "cant_update_message",
              "edit_window_closed", "ekm_access_denied", "team_access_not_granted"}


class SlackChannel(Channel):
    scheme = "slack"
    updates = True

    def __init__(self, client: WebClient, quick: WebClient, signing_secret: str,
                 default: str | None, context: ChannelContext) -> None:
        self.client, self.quick = client, quick
        self.signing_secret, self.default, self.context = signing_secret, default, context
        self.answers = ThreadPoolExecutor(ANSWER_THREADS, thread_name_prefix="staso-slack")
        self._notes = threading.BoundedSemaphore(NOTES_QUEUED_AT_MOST)

    @staticmethod
    def check_address(address: str) -> str:
        if not _ADDRESS.fullmatch(address):
            raise ValueError(f"notify: slack:{address} names no Slack channel: use #name "
                             "(lower case) or an id such as C024BE91L")
        return address

    @classmethod
    def from_env(cls, env: Mapping[str, str], context: ChannelContext) -> SlackChannel | None:
        token = env.get("STASO_SLACK_BOT_TOKEN", "").strip()
        secret = env.get("STASO_SLACK_SIGNING_SECRET", "").strip()
        if not token:
            if secret:
                raise StasoError("STASO_SLACK_SIGNING_SECRET is set but not "
                                 "STASO_SLACK_BOT_TOKEN; Slack needs both")
            return None
        if not secret:
            raise StasoError("STASO_SLACK_BOT_TOKEN is set but not STASO_SLACK_SIGNING_SECRET: "
                             "without it Slack's button clicks cannot be verified (the app's "
                             "Basic Information page shows it)")
        default = env.get("STASO_SLACK_CHANNEL", "").strip() or None
        if default is not None:
            try:
                cls.check_address(default)
            except ValueError as exc:
                raise StasoError(f"STASO_SLACK_CHANNEL: {exc}") from None
        try:
            from slack_sdk import WebClient
        except ImportError:
            raise StasoError(f"Slack approvals need slack_sdk: {install_extra('slack')}"
                             ) from None
        api_url = env.get("STASO_SLACK_API_URL", "").strip() or DEFAULT_API_URL
        base_url = api_url.rstrip("/") + "/"
        # 10 s: a delivery holds one of the outbox's threads; a slow Slack is retried later
        client = WebClient(token=token, base_url=base_url, timeout=10)
        quick = WebClient(token=token, base_url=base_url, timeout=ANSWER_TIMEOUT)
        quick.retry_handlers = []  # no second try: the click's 3 s would be gone
        return cls(client, quick, secret, default, context)

    def defaults(self) -> list[str]:
        return [self.default] if self.default else []

    # -- delivery (the outbox's thread) ---------------------------------------------------
    def post(self, address: str, escalation: Escalation) -> dict[str, Any] | None:
        try:
            answer = self._call(self.client.chat_postMessage, channel=address,
                                text=slack_blocks.fallback_text(escalation),
                                blocks=self._blocks(escalation), unfurl_links=False,
                                unfurl_media=False)
        except DeliveryError as exc:
            if exc.code not in _BLOCKS_REFUSED:
                raise
            log.warning("staso: Slack refused the message of %s (%s); posting it as plain "
                        "text", escalation.id, exc.code)
            answer = self._call(self.client.chat_postMessage, channel=address,
                                text=slack_blocks.plain_message(
                                    escalation, self.context.dashboard_link(escalation.id)),
                                unfurl_links=False, unfurl_media=False)
        return {"channel": answer["channel"], "ts": answer["ts"]}

    def update(self, address: str, escalation: Escalation, ref: dict[str, Any]) -> None:
        if not ref.get("channel") or not ref.get("ts"):
            raise DeliveryError("the post's channel and ts are not recorded", retry=False)
        try:
            self._call(self.client.chat_update, channel=ref["channel"], ts=ref["ts"],
                       text=slack_blocks.fallback_text(escalation),
                       blocks=self._blocks(escalation))
        except DeliveryError as exc:
            if exc.code not in _BLOCKS_REFUSED:
                raise
            self._call(self.client.chat_update, channel=ref["channel"], ts=ref["ts"],
                       text=slack_blocks.fallback_text(escalation), blocks=[])

    def _blocks(self, escalation: Escalation) -> list[dict[str, Any]]:
        return slack_blocks.message(escalation, self.context.dashboard_link(escalation.id))

    # -- answers (the interaction route: on this channel's own threads) ---------------
    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal (called on ``self.answers``; Slack's trigger lasts 3 s)."""
        self._call(self.quick.views_open, trigger_id=trigger_id, view=view)

    def tell_later(self, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees (a refused or late click), sent in the background:
        the click is answered without waiting for it, and while Slack is slow the notes
        beyond ``NOTES_QUEUED_AT_MOST`` are dropped, not queued without end."""
        if not self._notes.acquire(blocking=False):
            log.warning("staso: Slack is slow; a note to %s was not sent: %s", user, text)
            return

        def send() -> None:
            try:
                self._call(self.quick.chat_postEphemeral, channel=channel, user=user,
                           text=slack_blocks.mrkdwn_escape(text))
            except DeliveryError as exc:
                log.warning("staso: could not tell Slack user %s: %s (%s)", user, text, exc)
            finally:
                self._notes.release()
        self.answers.submit(send)

    def close(self) -> None:
        self.answers.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _call(method: Callable[..., Any], **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            return method(**kwargs)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", None)
            error = exc.response.get("error") if exc.response is not None else None
            if status == 429:
                after = exc.response.headers.get("retry-after") or \
                    exc.response.headers.get("Retry-After")
                raise DeliveryError(f"Slack is rate limiting ({error or 'ratelimited'})",
                                    after=float(after) if after and after.isdigit()
                                    else None) from None
            raise DeliveryError(f"Slack answered {error or status}",
                                retry=error not in _PERMANENT, code=error) from None
        except SlackClientError as exc:
            raise DeliveryError(f"Slack could not be reached: {exc}") from None
        except OSError as exc:  # a timeout or a refused connection
            raise DeliveryError(f"Slack could not be reached: {exc}") from None
