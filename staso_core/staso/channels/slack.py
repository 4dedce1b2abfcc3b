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

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import StasoError
from ..models import Escalation
from . import slack_blocks
from .base import Channel, ChannelContext, DeliveryError

if TYPE_CHECKING:
    from slack_sdk import WebClient

DEFAULT_API_URL = "https://slack.com/api/"
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

    def __init__(self, client: WebClient, signing_secret: str, default: str | None,
                 context: ChannelContext) -> None:
        self.client, self.signing_secret, self.default = client, signing_secret, default
        self.context = context

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
            raise StasoError("Slack approvals need slack_sdk: pip install 'staso[slack]'"
                             ) from None
        api_url = env.get("STASO_SLACK_API_URL", "").strip() or DEFAULT_API_URL
        # 10 s: a delivery holds the outbox's thread; a slow Slack is retried later
        client = WebClient(token=token, base_url=api_url.rstrip("/") + "/", timeout=10)
        return cls(client, secret, default, context)

    def defaults(self) -> list[str]:
        return [self.default] if self.default else []

    # -- delivery (the outbox's thread) ---------------------------------------------------
    def post(self, address: str, escalation: Escalation) -> dict[str, Any] | None:
        answer = self._call(self.client.chat_postMessage, channel=address,
                            text=slack_blocks.fallback_text(escalation),
                            blocks=self._blocks(escalation), unfurl_links=False,
                            unfurl_media=False)
        return {"channel": answer["channel"], "ts": answer["ts"]}

    def update(self, address: str, escalation: Escalation, ref: dict[str, Any]) -> None:
        if not ref.get("channel") or not ref.get("ts"):
            raise DeliveryError("the post's channel and ts are not recorded", retry=False)
        self._call(self.client.chat_update, channel=ref["channel"], ts=ref["ts"],
                   text=slack_blocks.fallback_text(escalation),
                   blocks=self._blocks(escalation))

    def _blocks(self, escalation: Escalation) -> list[dict[str, Any]]:
        return slack_blocks.message(escalation, self.context.dashboard_link(escalation.id))

    # -- answers (the interaction route, from a worker thread) -------------------------
    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self._call(self.client.views_open, trigger_id=trigger_id, view=view)

    def tell(self, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees (a refused or late click)."""
        self._call(self.client.chat_postEphemeral, channel=channel, user=user,
                   text=slack_blocks.mrkdwn_escape(text))

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
                                retry=error not in _PERMANENT) from None
        except SlackClientError as exc:
            raise DeliveryError(f"Slack could not be reached: {exc}") from None
        except OSError as exc:  # a timeout or a refused connection
            raise DeliveryError(f"Slack could not be reached: {exc}") from None
