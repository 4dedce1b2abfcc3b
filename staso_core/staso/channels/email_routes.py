"""``/v1/channels/email/{token}``: the pages an e-mail's approve and deny links open.

``GET`` (and ``HEAD``) only shows: the escalation's facts, the answer the link gives, a
comment field and one button. Mail scanners and link previews follow links, so following
one must never answer anything. Only the page's form, a ``POST`` to the same address,
answers: the link is checked again, the escalation resolved under the key's name, via
e-mail, exactly once (or, where several must approve, the approval counted once), and the
link recorded as used on every replica (``use_once``). The escalation's rule is asked
again at each step: a key that may not give this answer now (no longer in the rule's
approver group, or the one who asked for the call) is refused, and nothing is resolved.

The token (``email_links.py``) is random and kept only as its hash, bound to one
escalation, one key (as linked to one address) and one action. Statuses:

- 404: e-mail approvals are not configured, or the link is not one (forged, altered,
  for another escalation or action, or its key revoked or linked to another address: the
  page never says which), or it names no escalation;
- 403: the key may not give this answer (the escalation's approvers), or the form came
  from another site;
- 409: the escalation is answered (saying by whom) or expired: its links answer nothing;
  or this key approved it already (several must approve: each once);
- 410: this link was used already;
- 400, 413, 415: a form that is not this page's (nothing is resolved).

Every page escapes what it shows (``html.escape``), has no script, and is sent with a
Content-Security-Policy that allows none, ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer`` (the token is in the address) and ``Cache-Control:
no-store``.
"""

from __future__ import annotations

import asyncio
import html
import logging
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response

from ..approvers import AnswerRefused, Approver, NotAnApprover
from ..errors import EscalationConflict, EscalationNotFound
from ..models import Escalation
from ..server.auth import state_of
from ..server.state import ServerState
from ..store.links import AnswerLink
from . import email_links, facts
from .email import EmailChannel
from .facts import line

log = logging.getLogger("staso.channels")
router = APIRouter(prefix="/v1/channels/email", include_in_schema=False)

INPUT_LIMIT = 20_000  # characters of pretty JSON on the page; more is in the dashboard
COMMENT_LIMIT = 2000
FORM_LIMIT = 16 * 1024  # bytes: a comment and the action, with room to spare
_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; base-uri 'none'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_NOT_A_LINK = ("This link is not valid. It may be altered or incomplete (copy the whole "
               "address from the e-mail), or no longer valid: the approver key it was sent "
               "for may have been revoked, or linked to another address.")
_VERB = {"approve": "Approve", "deny": "Deny"}
_TOO_LARGE = ("These arguments are too large to show here in full, and an approval runs all of "
              "them: approve in the dashboard, where they are shown whole. (A deny link still "
              "works.)")


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str,
                 escalation: Escalation | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.escalation = status, title, escalation


@router.api_route("/{token}", methods=["GET", "HEAD"])
async def confirm(token: str, request: Request) -> Response:
    """The confirmation page; resolves nothing."""
    state = state_of(request)
    try:
        link, who, esc = await _check(state, token)
        if esc.effective_status() != "pending":
            raise _answered(esc)
        refused = facts.refused(esc, who, email_links.ACTIONS[link.action])
        if refused is not None:  # say so now, not after the approver pressed the button
            raise _not_taken(refused, esc)
    except Refused as exc:
        return _refused(state, exc)
    return _confirmation(link, who.name, esc)


@router.post("/{token}")
async def answer(token: str, request: Request) -> Response:
    """The confirmation page's form: resolves the escalation, once."""
    state = state_of(request)
    try:
        link, who, esc = await _check(state, token)
        _same_site(request, state)
        comment = await _form(request, link.action)
        if link.action == "approve" and not facts.shown_whole(esc, INPUT_LIMIT):
            raise Refused(409, "Answer in the dashboard", _TOO_LARGE, esc)
        try:
            done = await state.resolve(esc.id, status=email_links.ACTIONS[link.action],
                                       by=who.name, approver=who, comment=comment,
                                       via="email")
        except EscalationNotFound:
            raise Refused(404, "No such escalation", f"staso has no escalation {esc.id}."
                          ) from None
        except EscalationConflict as exc:
            current = await asyncio.to_thread(state.store.get_escalation, esc.id)
            if current.effective_status() == "pending":  # this key approved it already
                raise _not_taken(exc, current) from None
            raise _answered(current) from None
        except (NotAnApprover, AnswerRefused) as exc:
            raise _not_taken(exc, esc) from None
        try:  # recorded: the link is refused (410) from now on
            await asyncio.to_thread(state.store.use_answer_link, link.id)
        except Exception as exc:  # answered all the same: a replay then gets 409, not 410
            log.warning("staso: %s was answered by e-mail, but its link could not be "
                        "recorded as used: %s", done.id, exc)
    except Refused as exc:
        return _refused(state, exc)
    log.info("staso: %s %s by e-mail (key %s)", done.id, done.status, link.key_id)
    return _done(done)


def _same_site(request: Request, state: ServerState) -> None:
    """Refuse a form another site's page sent (the browser says so): the token is the
    only credential, and a page that learnt it must not answer through the approver."""
    site = request.headers.get("sec-fetch-site", "")
    origin = request.headers.get("origin", "")
    channel = state.channels.get("email")
    public = urlsplit(channel.context.public_url or "" if isinstance(channel, EmailChannel)
                      else "")
    ours = {f"{public.scheme}://{public.netloc}", f"{request.url.scheme}://{request.url.netloc}"}
    if site == "cross-site" or (origin and origin != "null" and origin not in ours):
        raise Refused(403, "Not from this page", "Answer from the confirmation page itself "
                                                 "(this form came from another site).")


async def _check(state: ServerState, token: str
                 ) -> tuple[AnswerLink, Approver, Escalation]:
    """The link, the approver and the escalation, or Refused (404 for anything
    not a live link, 410 for a used one)."""
    channel = state.channels.get("email")
    if not isinstance(channel, EmailChannel):
        raise Refused(404, "Not configured", "E-mail approvals are not configured on this "
                                             "server.")
    link = await asyncio.to_thread(email_links.find, state.store, token)
    found = None if link is None else \
        await asyncio.to_thread(state.store.key_by_id, link.key_id)
    if link is None or found is None or not email_links.answers_as(link, found[0]):
        raise Refused(404, "Invalid link", _NOT_A_LINK)
    try:
        esc = await asyncio.to_thread(state.store.get_escalation, link.escalation_id)
    except EscalationNotFound:
        raise Refused(404, "No such escalation",
                      f"staso has no escalation {link.escalation_id}.") from None
    if link.used_at is not None:
        raise Refused(410, "Link already used",
                      "This link was used already; a link answers once.", esc)
    return link, Approver.of_key(found[0]), esc


def _not_taken(exc: Exception, esc: Escalation) -> Refused:
    """This key's answer, refused by the escalation's rule (nothing was resolved)."""
    if isinstance(exc, NotAnApprover):
        return Refused(403, "Not yours to answer", f"{exc}. Nothing was changed.", esc)
    if isinstance(exc, EscalationConflict):
        return Refused(409, "Already approved", f"{exc}. Nothing was changed.", esc)
    return Refused(422, "Not taken", f"{exc}. Nothing was changed.", esc)


def _answered(esc: Escalation) -> Refused:
    if esc.effective_status() == "timeout":
        return Refused(409, "Expired", f"This escalation expired at "
                                       f"{facts.utc(esc.expires_at)}; it can no longer be "
                                       "approved or denied.", esc)
    answer = facts.answer(esc)
    headline = answer.headline if answer else f"Already {esc.status}"
    return Refused(409, "Already answered", f"This escalation was answered already: "
                                            f"{headline}. Nothing was changed.", esc)


async def _form(request: Request, action: str) -> str | None:
    """The comment from this page's form; Refused if the body is not that form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, "Not this page's form", "Send the confirmation page's form "
                                                   "(application/x-www-form-urlencoded).")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise Refused(413, "Form too large", f"The form is over {FORM_LIMIT:,} bytes.")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                        max_num_fields=10) if body else {}
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "Not this page's form", "The form could not be read (it must be "
                                                   "UTF-8 form fields).") from None
    comments = form.get("comment", [""])
    if form.get("action", []) != [action] or len(comments) != 1:
        raise Refused(400, "Not this page's form", "The form does not match its link: send "
                                                   "it from the confirmation page.")
    comment = comments[0].strip()
    if len(comment) > COMMENT_LIMIT:
        raise Refused(400, "Comment too long", f"A comment holds at most "
                                               f"{COMMENT_LIMIT:,} characters.")
    return comment or None


# -- pages ----------------------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _page(status: int, title: str, body: str) -> Response:
    text = ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>staso · {_e(title)}</title>\n"
            '<link rel="stylesheet" href="/static/dashboard.css">\n</head>\n'
            '<body class="email-answer">\n<header><h1>staso</h1></header>\n'
            f"<main>\n{body}\n</main>\n</body>\n</html>\n")
    return Response(text, status_code=status, media_type="text/html; charset=utf-8",
                    headers=_HEADERS)


def _facts(esc: Escalation) -> str:
    shown, cut = facts.pretty_input(esc, INPUT_LIMIT)
    rows = [("Agent", esc.agent_name or "-"), ("Rule", esc.rule_name or "-"),
            ("Severity", esc.severity)]
    if esc.status == "pending":
        rows.append(("Expires", facts.expiry(esc)))
    rows.append(("Escalation", esc.id))
    rows += [(name, text) for name, text in (("Approvers", facts.who_may_answer(esc)),
                                             ("Approvals", facts.approvals(esc))) if text]
    meta = "".join(f"<span>{_e(name)}: <b>{_e(line(value))}</b></span>"
                   for name, value in rows)
    more = '<p class="empty">The arguments were cut to fit; the dashboard has them all.</p>' \
        if cut else ""
    return (f'<section class="card" id="escalation" data-id="{_e(esc.id)}">\n'
            f'<div class="meta"><span class="tool">{_e(line(esc.tool_name))}</span>{meta}'
            "</div>\n"
            f'<p class="reason">{_e(line(esc.reason or "-"))}</p>\n'
            f'<pre class="input">{_e(shown)}</pre>{more}\n</section>')


def _confirmation(link: AnswerLink, name: str, esc: Escalation) -> Response:
    if link.action == "approve" and not facts.shown_whole(esc, INPUT_LIMIT):
        body = (f"<h2>Answer in the dashboard</h2>\n<p>{_e(_TOO_LARGE)}</p>\n{_facts(esc)}")
        return _page(200, "Answer in the dashboard", body)
    verb = _VERB[link.action]
    what = "run as shown" if link.action == "approve" else "not run; the agent is told why"
    if link.action == "approve" and esc.approvals_required > 1:
        what = (f"run as shown once {esc.approvals_required} different approvers have "
                f"approved ({len(esc.approvals or ())} so far)")
    body = (f"<h2>{verb} this call?</h2>\n"
            f"<p>You answer as <b>{_e(line(name))}</b>. {_e(line(esc.tool_name))} will "
            f"{what}. Nothing happens until you press {verb}.</p>\n"
            f"{_facts(esc)}\n"
            f'<form method="post" id="answer" class="actions">\n'
            f'<input type="hidden" name="action" value="{_e(link.action)}">\n'
            f'<label>Comment{" (the agent sees it)" if link.action == "deny" else ""}<br>'
            f'<textarea name="comment" id="comment" maxlength="{COMMENT_LIMIT}" rows="4" '
            'cols="60"></textarea></label>\n'
            f'<button type="submit" id="submit" class="{link.action}">{verb}</button>\n'
            "</form>")
    return _page(200, f"{verb}?", body)


def _done(esc: Escalation) -> Response:
    if esc.status == "pending":  # one approval of several: counted, the others to come
        progress = facts.approvals(esc) or "approval counted"
        left = esc.approvals_required - len(esc.approvals or ())
        body = (f'<h2 id="result" class="status-pending">Your approval is counted: '
                f"{_e(progress)}</h2>\n"
                f"<p>The call waits for {left} more approval{'s' if left != 1 else ''} "
                "from other approvers; the agent is told once they are given (or at the "
                f"first denial).</p>\n{_facts(esc)}")
        return _page(200, "Approval counted", body)
    answer = facts.answer(esc)
    headline = f"{answer.headline} at {answer.when}" if answer else esc.status
    comment = f"<p>Comment: {_e(line(esc.comment))}</p>\n" if esc.comment else ""
    body = (f'<h2 id="result" class="status-{_e(esc.status)}">{_e(line(headline))}</h2>\n'
            f"{comment}{_facts(esc)}")
    return _page(200, esc.status.capitalize(), body)


def _refused(state: ServerState, exc: Refused) -> Response:
    state.metrics.error(exc.status)
    body = f'<h2 id="result" class="error">{_e(exc.title)}</h2>\n<p id="message">' \
           f"{_e(str(exc))}</p>"
    if exc.escalation is not None:
        body += "\n" + _facts(exc.escalation)
    return _page(exc.status, exc.title, body)
