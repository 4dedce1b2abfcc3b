"""The built-in approval channels, Slack and e-mail, and the routes their answers come
back to: registered through ``staso_channels`` and ``staso_http_routes`` like a plugin's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ..channels.base import Channel


@hookimpl
def staso_channels() -> list[type[Channel]]:
    from ..channels.email import EmailChannel
    from ..channels.slack import SlackChannel

    return [SlackChannel, EmailChannel]


@hookimpl
def staso_http_routes() -> list[APIRouter]:
    from ..channels import email_routes, slack_routes  # only a server calls this hook

    return [slack_routes.router, email_routes.router]
