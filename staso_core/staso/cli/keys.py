"""``staso keys``: create, link, bind, group, list and revoke API keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional, TypeVar

import typer
from rich.table import Table

from .common import DATABASE_URL, age, fail, key_store, out

if TYPE_CHECKING:
    from ..store import StoreBackend

T = TypeVar("T")

keys_app = typer.Typer(help="Create, list and revoke API keys for agents, approvers and admins.",
                       no_args_is_help=True)

SLACK_USER = typer.Option(None, help="approver/admin keys: the Slack member id (U…) that "
                                     "answers in Slack as this key")
EMAIL = typer.Option(None, help="approver/admin keys: the e-mail address whose links answer "
                                "as this key")


GROUP = typer.Option([], "--group", help="approver/admin keys: an approver group it belongs "
                                         "to, for rules' approvers: [\"group:NAME\"] "
                                         "(repeatable)")


def _change_keys(database_url: str | None, change: Callable[[StoreBackend], T],
                 missing: str = "") -> T:
    """Run ``change(store)`` on the keys' database. A refusal (a staso error) exits 1 with its
    message and, where ``missing`` says what it is, so does finding no such key (a false
    result)."""
    from ..errors import StasoError

    with key_store(database_url) as store:
        try:
            done = change(store)
        except StasoError as exc:
            fail(str(exc))
            raise  # (not reached: _fail exits)
    if missing and not done:
        fail(missing)
    return done


def _groups(given: list[str]) -> list[str]:
    """Groups as given: --group a --group b, or --group a,b."""
    return [g.strip() for item in given for g in item.split(",") if g.strip()]


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., help="agent, approver or admin"),
                name: str = typer.Option(..., help="who or what uses the key"),
                agent: Optional[str] = typer.Option(  # noqa: UP045
                    None, help="agent keys: the agent names it may act for, a glob such "
                               "as 'billing-*' (default: exactly --name)"),
                slack_user: Optional[str] = SLACK_USER,  # noqa: UP045
                email: Optional[str] = EMAIL,  # noqa: UP045
                group: list[str] = GROUP,
                database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Create an API key; prints only the key, once (only its hash is stored)."""
    from ..store.keys import create_key

    record, key = _change_keys(database_url, lambda store: create_key(
        store, role=role, name=name, agents=agent, slack_user=slack_user, email=email,
        groups=_groups(group)))
    acts = f", acting for agents matching {record.agents!r}" if record.agents else ""
    member = f", in group(s) {', '.join(record.groups)}" if record.groups else ""
    typer.echo(f"created {record.role} key {record.id} for {record.name!r}{acts}{member}; "
               "it is shown only now", err=True)
    print(key)


@keys_app.command("link")
def keys_link(key_id: str = typer.Argument(..., help="the approver or admin key's id (key_...)"),
              slack_user: Optional[str] = SLACK_USER,  # noqa: UP045
              email: Optional[str] = EMAIL,  # noqa: UP045
              database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Let a Slack user or an e-mail address answer escalations as this key."""
    _change_keys(database_url, lambda store: store.link_key(key_id, slack_user=slack_user,
                                                            email=email),
                 f"no live approver or admin key {key_id!r} (see staso keys list)")
    who = " and ".join(x for x in (slack_user and f"Slack user {slack_user.strip()}",
                                   email and f"{email.strip().lower()}") if x)
    typer.echo(f"{who} now answer(s) as key {key_id}", err=True)


@keys_app.command("bind")
def keys_bind(key_id: str = typer.Argument(..., help="the agent key's id (key_...)"),
              agent: str = typer.Option(..., help="the agent names it may act for (a glob)"),
              database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Bind an agent key to agent names (keys made before binding act for any agent)."""
    _change_keys(database_url, lambda store: store.bind_key(key_id, agent),
                 f"no live agent key {key_id!r} (see staso keys list)")
    typer.echo(f"key {key_id} now acts only for agents matching {agent.strip()!r}; "
               "servers follow within a second", err=True)


@keys_app.command("groups")
def keys_groups(key_id: str = typer.Argument(..., help="the approver or admin key's id (key_...)"),
                set_: str = typer.Option(..., "--set", help="its approver groups, comma-"
                                         "separated (replaces them; '' for none)"),
                database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Set the approver groups of a key (rules' approvers: ["group:NAME"])."""
    groups = _groups([set_])
    _change_keys(database_url, lambda store: store.set_groups(key_id, groups),
                 f"no live approver or admin key {key_id!r} (see staso keys list)")
    typer.echo(f"key {key_id} is now in group(s) {', '.join(groups) or '(none)'}; servers "
               "follow within a second", err=True)


@keys_app.command("list")
def keys_list(database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """List keys: id, role, name, age and whether revoked (keys themselves are not stored)."""
    with key_store(database_url) as store:
        keys = store.list_keys()
    # (the Slack user and address that answer as a key: a column only where some key has one)
    linked = any(record.slack_user or record.email for record, _ in keys)
    grouped = any(record.groups for record, _ in keys)
    table = Table("id", "role", "name", "agents", *(["groups"] if grouped else []),
                  *(["answers in"] if linked else []), "age", "status")
    now = time.time()
    for record, revoked_at in keys:
        agents = record.agents or ("any (unbound)" if record.role == "agent" else "")
        answers = ", ".join(x for x in (record.slack_user and f"slack:{record.slack_user}",
                                        record.email and f"email:{record.email}") if x)
        table.add_row(record.id, record.role, record.name, agents,
                      *([", ".join(record.groups)] if grouped else []),
                      *([answers] if linked else []), age(now - record.created_at),
                      "live" if revoked_at is None else f"revoked {age(now - revoked_at)} ago")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key's id (key_...), from keys list"),
                database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Revoke a key: every server refuses it within a second."""
    _change_keys(database_url, lambda store: store.revoke_key(key_id),
                 f"no live key {key_id!r} (see staso keys list)")
    typer.echo(f"revoked {key_id}", err=True)
