"""``POST /v1/channels/slack/interactions``: Slack's button clicks and modal submissions.

Every request is checked before anything is read from it: the signature per Slack's
signing scheme (``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{raw body}``, verified with
``slack_sdk``'s ``SignatureVerifier``), a timestamp within five minutes, and never seen
before (a replayed request is refused on every replica). The clicking Slack user must be
linked to a live approver or admin key (``staso keys create … --slack-user U…``) that
the escalation's rule lets answer; the answer is recorded under that key's name, via
Slack, and resolves exactly once (or counts once toward a quorum): a click that loses a
race to another answer, or a second approval by the same person, is told so in Slack, and
nothing changes.

Statuses: 401 for a request Slack did not sign (forged, stale, replayed), 400 for a
payload that is not one of ours, 403 for a Slack user who may not answer (not linked, not
among the rule's approvers, or the one who asked for the call), 422 for an answer the
rule does not take from one person (an edit, or allowing similar calls, where several
must approve), 404 when Slack is not configured. A refused click is also told why,
privately, in Slack; a refused modal says why under its field.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from ..approvers import AnswerRefused, Approver, NotAnApprover
from ..errors import EscalationConflict, EscalationNotFound, InvalidToolInput, StasoError
from ..grants import MAX_USES, scope_from
from ..models import Escalation
from ..server.api import json_response
from ..server.auth import state_of
from ..server.state import ServerState
from . import facts
from . import slack_blocks as blocks
from .base import DeliveryError
from .slack import SlackChannel

log = logging.getLogger("staso.channels")
router = APIRouter(prefix="/v1/channels/slack")
WINDOW = 300  # seconds: Slack's own limit on a request's age, either way
ANSWER_WITHIN = 2.7  # seconds: a modal opened later than Slack's 3 s is no use
_ANSWERS = {blocks.APPROVE, blocks.DENY, blocks.EDIT, blocks.GRANT}
_FORMS = (blocks.EDIT, blocks.DENY, blocks.GRANT)
_USES = re.compile(r"[0-9]{1,7}")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@router.post("/interactions", summary="Slack's interactivity requests (signed by Slack)",
             include_in_schema=True)
async def interactions(request: Request) -> Response:
    state = state_of(request)
    channel = state.channels.get("slack")
    if not isinstance(channel, SlackChannel):
        return _refuse(state, 404, "Slack approvals are not configured on this server")
    body = await request.body()
    try:
        await _verify(state, channel, body, request.headers)
        payload = _payload(body)
        kind = payload.get("type")
        if kind == "block_actions":
            return await _clicked(state, channel, payload)
        if kind == "view_submission":
            return await _submitted(state, channel, payload)
        if kind == "view_closed":
            return Response(status_code=200)
        raise Refused(400, f"staso does not handle Slack {kind!r} requests")
    except Refused as exc:
        return _refuse(state, exc.status, str(exc))


def _refuse(state: ServerState, status: int, message: str) -> Response:
    state.metrics.error(status)
    return json_response({"detail": message, "error": "SlackRequestRefused"}, status)


async def _verify(state: ServerState, channel: SlackChannel, body: bytes,
                  headers: Any) -> None:
    from slack_sdk.signature import SignatureVerifier

    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp or not signature:
        raise Refused(401, "not signed by Slack: X-Slack-Signature and "
                           "X-Slack-Request-Timestamp are required")
    try:
        valid = SignatureVerifier(channel.signing_secret).is_valid(body, timestamp, signature)
    except (ValueError, TypeError):  # a timestamp that is not a number, a non-ASCII header
        valid = False
    if not valid:
        raise Refused(401, "the Slack signature does not match, or the request is more than "
                           f"{WINDOW // 60} minutes old")
    digest = hashlib.sha256(f"slack:{signature}".encode()).hexdigest()
    fresh = await asyncio.to_thread(state.store.use_once, digest,
                                    int(timestamp) + 2 * WINDOW)
    if not fresh:
        raise Refused(401, "this Slack request was already received (a replay)")


def _payload(body: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, RecursionError):
        raise Refused(400, "the body must be a form with one 'payload' field holding JSON, "
                           "as Slack sends it") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict):
        raise Refused(400, "the payload must be a JSON object naming the Slack user")
    return payload


async def _approver(state: ServerState, payload: dict[str, Any]) -> Approver:
    """The person of the approver key the clicking Slack user answers as (403 if none)."""
    user = payload["user"].get("id")
    found = await asyncio.to_thread(state.store.key_for_person, slack_user=str(user)) \
        if isinstance(user, str) and user else None
    if found is None:
        raise Refused(403, f"Slack user {user!r} is not linked to an approver key; an admin "
                           "links one with: staso keys link KEY_ID --slack-user "
                           f"{user if isinstance(user, str) else 'U…'}")
    return Approver.of_key(found[0])


# -- button clicks ------------------------------------------------------------------------
async def _clicked(state: ServerState, channel: SlackChannel,
                   payload: dict[str, Any]) -> Response:
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else None
    if isinstance(action, dict) and action.get("action_id") == blocks.OPEN:
        return Response(status_code=200)  # a link button: Slack opened the dashboard
    if not isinstance(action, dict) or action.get("action_id") not in _ANSWERS \
            or not isinstance(action.get("value"), str):
        raise Refused(400, "not one of staso's buttons (staso_approve, staso_deny, staso_edit, "
                           "staso_grant)")
    where = _where(payload)
    try:
        who = await _approver(state, payload)
    except Refused as exc:
        _tell(channel, where, payload, str(exc))
        raise
    escalation_id, action_id = action["value"], action["action_id"]
    try:
        esc = await asyncio.to_thread(state.store.get_escalation, escalation_id)
        if esc.status != "pending":
            raise EscalationConflict(_late(esc), status=esc.status)
        if action_id in (blocks.APPROVE, blocks.GRANT) and \
                not facts.shown_whole(esc, blocks.INPUT_LIMIT):
            _tell(channel, where, payload, f"{esc.id}'s arguments are too large to show "
                  "whole in Slack, and an approval runs all of them: approve it in the "
                  "dashboard")
            return Response(status_code=200)
        refused = _refused(esc, who, action_id)
        if refused is not None:  # before any modal opens: it could only be refused
            raise refused
        if action_id == blocks.APPROVE:
            await state.resolve(escalation_id, status="approved", by=who.name, approver=who,
                                via="slack")
        else:
            trigger = payload.get("trigger_id")
            if not isinstance(trigger, str) or not trigger:
                raise Refused(400, "a click that opens a form needs Slack's trigger_id")
            if action_id == blocks.DENY:
                view = blocks.deny_modal(esc)
            elif action_id == blocks.GRANT:
                view = blocks.grant_modal(esc)
            else:
                view = blocks.edit_modal(esc, channel.context.dashboard_link(esc.id))
            await _open(channel, trigger, view)
    except EscalationNotFound:
        _tell(channel, where, payload, f"staso has no escalation {escalation_id}")
        raise Refused(404, f"no escalation with id {escalation_id!r}") from None
    except EscalationConflict as exc:  # lost a race, answered before, approved already
        _tell(channel, where, payload, str(exc))
        return json_response({"detail": str(exc), "status": exc.status})
    except (NotAnApprover, AnswerRefused) as exc:  # not theirs to answer, or not so
        _tell(channel, where, payload, str(exc))
        raise Refused(403 if isinstance(exc, NotAnApprover) else 422, str(exc)) from None
    except DeliveryError as exc:
        log.warning("staso: could not open the Slack form for %s: %s", escalation_id, exc)
        _tell(channel, where, payload, f"could not open the form: {exc}")
    return Response(status_code=200)


async def _open(channel: SlackChannel, trigger: str, view: dict[str, Any]) -> None:
    """Open a modal on the channel's own threads, giving up before Slack's 3 s pass."""
    opening = asyncio.get_running_loop().run_in_executor(channel.answers, channel.open_view,
                                                         trigger, view)
    try:
        await asyncio.wait_for(opening, ANSWER_WITHIN)
    except TimeoutError:
        raise DeliveryError("Slack did not answer in time") from None


def _refused(esc: Escalation, who: Approver, action_id: str) -> StasoError | None:
    """Why the core would refuse this person's answer by this button (None: it would
    not), asked before a modal opens that could only be refused."""
    refused = facts.refused(esc, who, "denied" if action_id == blocks.DENY else "approved",
                            editing=action_id == blocks.EDIT,
                            granting=action_id == blocks.GRANT)
    if refused is None and action_id == blocks.GRANT:
        try:
            scope_from({}, esc, {})  # (a rule that takes no standing approval)
        except AnswerRefused as exc:
            return exc
    return refused


def _late(esc: Escalation) -> str:
    if esc.status == "timeout":
        return f"escalation {esc.id} expired; it can no longer be approved or denied"
    who = f" by {esc.resolved_by}" if esc.resolved_by else ""
    return f"escalation {esc.id} is already {esc.status}{who}"


def _where(payload: dict[str, Any]) -> str | None:
    """The channel a click came from (to answer in it privately)."""
    for part, key in (("channel", "id"), ("container", "channel_id")):
        value = payload.get(part)
        if isinstance(value, dict) and isinstance(value.get(key), str):
            return str(value[key])
    return None


def _tell(channel: SlackChannel, where: str | None, payload: dict[str, Any],
          text: str) -> None:
    """Tell the clicking user privately, in the background (never awaited: a slow Slack
    must not hold the answer to the click)."""
    user = payload.get("user", {}).get("id")
    if where is not None and isinstance(user, str):
        channel.tell_later(where, user, text)


# -- modal submissions --------------------------------------------------------------------
async def _submitted(state: ServerState, channel: SlackChannel,
                     payload: dict[str, Any]) -> Response:
    view = payload.get("view")
    if not isinstance(view, dict) or view.get("callback_id") not in _FORMS:
        raise Refused(400, "not one of staso's forms")
    who = await _approver(state, payload)
    escalation_id = view.get("private_metadata")
    if not isinstance(escalation_id, str) or not escalation_id:
        raise Refused(400, "the form does not name its escalation")
    values = _values(view)
    comment = (values.get((blocks.COMMENT_BLOCK, blocks.COMMENT_FIELD)) or "").strip() or None
    main = {blocks.EDIT: blocks.EDIT_BLOCK, blocks.DENY: blocks.COMMENT_BLOCK,
            blocks.GRANT: blocks.TTL_BLOCK}[view["callback_id"]]  # where a refusal is shown
    try:
        if view["callback_id"] == blocks.GRANT:
            return await _granted(state, escalation_id, who, values, comment)
        if view["callback_id"] == blocks.DENY:
            if comment is None:
                return _form_error(blocks.COMMENT_BLOCK, "Say why: the agent is told.")
            await state.resolve(escalation_id, status="denied", by=who.name, approver=who,
                                comment=comment, via="slack")
        else:
            edited = _edited(values.get((blocks.EDIT_BLOCK, blocks.EDIT_FIELD)))
            if isinstance(edited, str):
                return _form_error(blocks.EDIT_BLOCK, edited)
            await state.resolve(escalation_id, status="approved", by=who.name, approver=who,
                                comment=comment, modified_input=edited, via="slack")
    except EscalationNotFound:
        raise Refused(404, f"no escalation with id {escalation_id!r}") from None
    except InvalidToolInput as exc:
        return _form_error(blocks.EDIT_BLOCK, str(exc))
    except (EscalationConflict, NotAnApprover, AnswerRefused) as exc:
        return _form_error(main, str(exc))
    return Response(status_code=200)  # an empty answer closes the modal


async def _granted(state: ServerState, escalation_id: str, who: Approver,
                   values: dict[tuple[str, str], str | None], comment: str | None
                   ) -> Response:
    """The "approve & allow similar" form: each value checked by the core's own grant
    check (``grants.scope_from``), one field at a time so that what is wrong is said
    under that field; then one approval with the standing approval's scope."""
    esc = await asyncio.to_thread(state.store.get_escalation, escalation_id)
    refused = facts.refused(esc, who, "approved", granting=True)
    if refused is not None:  # whose answer it is comes before what it says
        return _form_error(blocks.TTL_BLOCK, str(refused))
    ttl = values.get((blocks.TTL_BLOCK, blocks.TTL_FIELD))
    if ttl not in blocks.TTLS:
        return _form_error(blocks.TTL_BLOCK, "Choose how long similar calls are allowed: "
                                             f"{', '.join(blocks.TTLS.values())}.")
    grant: dict[str, Any] = {"ttl": ttl}
    uses = (values.get((blocks.USES_BLOCK, blocks.USES_FIELD)) or "").strip()
    if uses:
        if _USES.fullmatch(uses) is None:
            return _form_error(blocks.USES_BLOCK, f"A whole number of calls from 1 to "
                                                  f"{MAX_USES:,}, such as 20 (or empty: no "
                                                  "limit but the time).")
        grant["max_uses"] = int(uses)
    when = (values.get((blocks.WHEN_BLOCK, blocks.WHEN_FIELD)) or "").strip()
    if when:
        grant["when"] = when
    functions = state.service.plugins.cel_functions()
    for block, part in ((blocks.TTL_BLOCK, {"ttl": ttl}),
                        (blocks.USES_BLOCK, {k: grant[k] for k in ("max_uses",) if k in grant}),
                        (blocks.WHEN_BLOCK, {k: grant[k] for k in ("when",) if k in grant})):
        try:
            await asyncio.to_thread(scope_from, part, esc, functions)
        except AnswerRefused as exc:
            return _form_error(block, str(exc))
    await state.resolve(escalation_id, status="approved", by=who.name, approver=who,
                        comment=comment, via="slack", grant=grant)
    return Response(status_code=200)


def _values(view: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    state = view.get("state")
    found: dict[tuple[str, str], str | None] = {}
    raw = state.get("values") if isinstance(state, dict) else None
    for block_id, fields in (raw or {}).items() if isinstance(raw, dict) else ():
        for action_id, field in (fields or {}).items() if isinstance(fields, dict) else ():
            value = field.get("value") if isinstance(field, dict) else None
            chosen = field.get("selected_option") if isinstance(field, dict) else None
            if isinstance(chosen, dict):  # a static_select: the chosen option's value
                value = chosen.get("value")
            found[(str(block_id), str(action_id))] = value if isinstance(value, str) else None
    return found


def _edited(text: str | None) -> dict[str, Any] | str:
    """The edited input, or what is wrong with it (shown under the field)."""
    if not text or not text.strip():
        return "The input is empty: give the tool's arguments as a JSON object."
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"Not valid JSON: {exc}"[:300]
    except RecursionError:
        return "Nested too deeply to be a tool's arguments."
    if not isinstance(value, dict):
        return f"The input must be a JSON object of arguments, not {type(value).__name__}."
    return value


def _form_error(block_id: str, message: str) -> Response:
    """Keep the modal open with ``message`` under the field (nothing was resolved)."""
    return json_response({"response_action": "errors", "errors": {block_id: message[:300]}})
