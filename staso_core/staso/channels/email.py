"""The e-mail channel: each escalation mailed to its recipients (a rule's ``notify:
["email:ops@example.com"]``, or ``STASO_EMAIL_TO``), with an approve and a deny link for a
recipient whose address answers as an approver key (``staso keys create --role approver …
--email``). The links open confirmation pages (``email_routes.py``); opening one changes
nothing, so a mail scanner that follows links approves nothing.

Configuration (the environment of ``staso serve``):

- ``STASO_SMTP_URL``: ``smtp://host:port`` (plain; port 25 by default),
  ``smtp+starttls://host:port`` (STARTTLS, required; port 587) or ``smtps://host:port``
  (TLS from the start; port 465). A user and password may come in the URL,
  percent-encoded: ``smtp+starttls://user:p%40ss@mail.example.com:587`` (over plain
  ``smtp://`` only to a relay on this machine). Certificates are verified against the
  system's CAs (``SSL_CERT_FILE`` names others);
- ``STASO_EMAIL_FROM``: the sender, ``staso@example.com`` or ``staso <staso@example.com>``;
- ``STASO_PUBLIC_URL``: where approvers reach this server (the links);
- ``STASO_EMAIL_TO``: comma-separated recipients of escalations whose rule names none.

Messages are sent with the standard library's ``smtplib``, one connection per message,
from the outbox's thread (``outbox.py``), which retries what fails: an SMTP server that
answers 5xx (a refused recipient, a message too large, failed authentication) is not
retried; a 4xx answer or a network error is.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import unquote, urlsplit

from ..approvers import Approver
from ..errors import StasoError
from ..models import Escalation
from ..store.keys import is_address
from . import email_links, email_message, facts
from .base import Channel, ChannelContext, DeliveryError

TIMEOUT = 10.0  # seconds: a delivery holds the outbox's thread; a slow server is retried
DEADLINE = 60.0  # seconds for one whole message (well within the outbox's 120 s lease)
CONTENT_REFUSED = "content_refused"  # a 5xx to the message itself: sent again without input
PATH = "/v1/channels/email/"
_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}  # a relay on this machine: plain is fine


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send, from ``STASO_SMTP_URL``."""

    scheme: str
    host: str
    port: int
    user: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never the password
        who = f"{self.user}@" if self.user else ""
        return f"SmtpServer({self.scheme}://{who}{self.host}:{self.port})"

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """StasoError naming what is wrong (never repeating the URL: it may hold a
        password)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise StasoError("STASO_SMTP_URL must start with smtp:// (plain), "
                             "smtp+starttls:// (STARTTLS) or smtps:// (TLS), not "
                             f"{(scheme + '://') if scheme else 'no scheme'}")
        try:
            port = parts.port
        except ValueError:
            raise StasoError("STASO_SMTP_URL has a port that is not a number from 1 to "
                             "65535") from None
        if not parts.hostname:
            raise StasoError("STASO_SMTP_URL names no host: use, for example, "
                             "smtp+starttls://mail.example.com:587")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise StasoError("STASO_SMTP_URL takes only scheme://[user:password@]host[:port]")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is not None and not user:
            raise StasoError("STASO_SMTP_URL has a password but no user name")
        if user and scheme == "smtp" and parts.hostname not in _LOOPBACK:
            raise StasoError("STASO_SMTP_URL has a user and password for a plain smtp:// "
                             "connection, which would send them unencrypted: use "
                             "smtp+starttls:// or smtps://")
        return cls(scheme, parts.hostname, port or _SCHEMES[scheme], user, password)


def _address(address: str) -> str | None:
    """One address as kept (stripped, lower case), or None if it is not one."""
    address = address.strip().lower()
    return address if is_address(address) else None


class EmailChannel(Channel):
    scheme = "email"
    updates = False  # a sent e-mail stays as sent; its links die with the escalation

    def __init__(self, smtp: SmtpServer, sender: str, envelope_from: str,
                 recipients: list[str], context: ChannelContext) -> None:
        self.smtp, self.sender, self.envelope_from = smtp, sender, envelope_from
        self.recipients, self.context = recipients, context
        self.domain = envelope_from.rpartition("@")[2]

    @staticmethod
    def check_address(address: str) -> str:
        kept = _address(address)
        if kept is None:
            raise ValueError(f"email:{address} is not one e-mail address; write one per "
                             "target, such as email:ops@example.com")
        return kept

    @classmethod
    def from_env(cls, env: Mapping[str, str], context: ChannelContext) -> EmailChannel | None:
        url = env.get("STASO_SMTP_URL", "").strip()
        sender = env.get("STASO_EMAIL_FROM", "").strip()
        to = env.get("STASO_EMAIL_TO", "").strip()
        if not url:
            if sender or to:
                given = " and ".join(n for n, v in (("STASO_EMAIL_FROM", sender),
                                                    ("STASO_EMAIL_TO", to)) if v)
                raise StasoError(f"{given} set but not STASO_SMTP_URL: e-mail approvals need "
                                 "an SMTP server, such as "
                                 "STASO_SMTP_URL=smtp+starttls://mail.example.com:587")
            return None
        smtp = SmtpServer.parse(url)
        if not sender:
            raise StasoError("STASO_SMTP_URL is set but not STASO_EMAIL_FROM: say whom the "
                             "e-mails come from, such as staso@example.com")
        name, addr = parseaddr(sender)
        envelope_from = _address(addr) if addr and "\n" not in sender and "\r" not in sender \
            else None
        if envelope_from is None:
            raise StasoError(f"STASO_EMAIL_FROM={sender!r} is not an address such as "
                             "staso@example.com or 'staso <staso@example.com>'")
        if not context.public_url:
            raise StasoError("STASO_SMTP_URL is set but not STASO_PUBLIC_URL: the e-mails' "
                             "approve and deny links need the address approvers reach this "
                             "server at, such as https://staso.example.com")
        recipients: list[str] = []
        for part in to.split(","):
            if not part.strip():
                continue
            kept = _address(part)
            if kept is None:
                raise StasoError(f"STASO_EMAIL_TO: {part.strip()!r} is not an e-mail address "
                                 "(give addresses separated by commas, such as "
                                 "ops@example.com,alice@example.com)")
            recipients.append(kept)
        return cls(smtp, formataddr((name, envelope_from)) if name else envelope_from,
                   envelope_from, list(dict.fromkeys(recipients)), context)

    def defaults(self) -> list[str]:
        return list(self.recipients)

    # -- delivery (the outbox's thread) ---------------------------------------------------
    def message(self, address: str, escalation: Escalation) -> EmailMessage:
        """The message to ``address``: with answer links if it answers as an approver key
        and the escalation is pending, one for each answer the escalation's rule lets
        that key give (none for a key not among its approvers; no approve link for the
        one who asked for the call where the rule forbids approving one's own). A link
        is made only for an answer that would be taken now; it is checked again when
        used."""
        links = None
        if escalation.status == "pending":
            found = self.context.store.key_for_person(email=address)
            if found is not None and found[0].email:
                key, store = found[0], self.context.store
                who = Approver.of_key(key)
                made: dict[str, str | None] = {}
                why: list[str] = []
                for action, status in email_links.ACTIONS.items():
                    refused = facts.refused(escalation, who, status)
                    if refused is None:
                        made[action] = self.link(email_links.make(store, escalation, key,
                                                                  action))
                    elif str(refused) not in why:
                        why.append(str(refused))
                links = email_message.Links(answering_as=key.name, approve=made.get("approve"),
                                            deny=made.get("deny"),
                                            refused=" ".join(why) or None)
        return email_message.build(escalation, sender=self.sender, recipient=address,
                                   domain=self.domain, links=links,
                                   dashboard=self.context.dashboard_link(escalation.id))

    def link(self, token: str) -> str:
        return f"{self.context.public_url}{PATH}{token}"

    def post(self, address: str, escalation: Escalation) -> dict[str, Any] | None:
        msg = self.message(address, escalation)
        try:
            self.send(msg, address)
        except DeliveryError as exc:
            if exc.code != CONTENT_REFUSED:
                raise
            msg = email_message.brief(escalation, sender=self.sender, recipient=address,
                                      domain=self.domain,
                                      dashboard=self.context.dashboard_link(escalation.id))
            self.send(msg, address)
        return {"message_id": msg["Message-ID"]}

    def send(self, msg: EmailMessage, address: str) -> None:
        """One message over one connection, within ``DEADLINE`` seconds in all (a server
        that answers a byte at a time is cut off, and the message tried again later)."""
        try:
            smtp = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failure(exc, address) from None
        watchdog = threading.Timer(DEADLINE, _cut_off, args=(smtp,))
        watchdog.daemon = True
        watchdog.start()
        try:
            if self.smtp.user:
                smtp.login(self.smtp.user, self.smtp.password or "")
            smtp.send_message(msg, from_addr=self.envelope_from, to_addrs=[address])
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._failure(exc, address) from None
        finally:
            watchdog.cancel()
        try:  # sent: an error saying goodbye does not make it unsent (and sent twice)
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _failure(self, exc: Exception, address: str) -> DeliveryError:
        """What a failed send means: a 5xx is given up (the message itself refused: sent
        again without the arguments), a 4xx or a network error tried again later."""
        where = f"the SMTP server at {self.smtp.host}:{self.smtp.port}"
        if isinstance(exc, smtplib.SMTPDataError):
            permanent = 500 <= exc.smtp_code < 600
            return DeliveryError(f"the SMTP server refused the message: {exc.smtp_code} "
                                 f"{_said(exc.smtp_error)}", retry=not permanent,
                                 code=CONTENT_REFUSED if permanent else None)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(exc.recipients.values()), (0, b""))
            return DeliveryError(f"the SMTP server refused {address}: {code} {_said(text)}",
                                 retry=not 500 <= code < 600)
        if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, auth, connect
            return DeliveryError(f"the SMTP server answered {exc.smtp_code} "
                                 f"{_said(exc.smtp_error)}",
                                 retry=not 500 <= exc.smtp_code < 600)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return DeliveryError(f"{where} does not support what STASO_SMTP_URL asks for: "
                                 f"{exc}")
        # refused, timed out, cut off at the deadline, TLS failed
        return DeliveryError(f"{where} could not be reached: {type(exc).__name__}: {exc}")

    def _connect(self) -> smtplib.SMTP:
        smtp = self.smtp
        if smtp.scheme == "smtps":
            return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT,
                                    context=ssl.create_default_context())
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT)
        if smtp.scheme == "smtp+starttls":
            try:
                client.starttls(context=ssl.create_default_context())
            except BaseException:
                client.close()
                raise
        return client


def _cut_off(smtp: smtplib.SMTP) -> None:
    """End a delivery past its deadline: shutting the socket down wakes the blocked read."""
    sock = getattr(smtp, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _said(text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return " ".join(said.split())[:300]
