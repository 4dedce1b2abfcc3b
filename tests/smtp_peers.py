"""A real SMTP server for tests (aiosmtpd), collecting what it is sent, and a TLS
certificate for STARTTLS on 127.0.0.1."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from staso.channels.email_message import ESCALATION_HEADER


class Port0Controller(Controller):
    """aiosmtpd's Controller on a port the system picks (port=0): its readiness probe
    dials the configured port, so read the bound one first."""

    def _trigger_server(self) -> None:
        server: Any = self.server  # an asyncio Server: it has .sockets
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool  # sent after STARTTLS
    login: str | None  # the user it authenticated as


class Mailbox:
    """An aiosmtpd handler that keeps every message. ``refuse``: recipients refused with
    550 (permanent); ``busy``: recipients whose first ``busy[address]`` messages are
    answered 451 (try again later)."""

    def __init__(self, refuse: set[str] | None = None,
                 busy: dict[str, int] | None = None) -> None:
        self.refuse = refuse or set()
        self.busy = dict(busy or {})
        self.refuse_content: set[str] = set()  # a message holding one: 554, as a filter would
        self.goodbye = "221 Bye"  # the answer to QUIT, after the message is accepted
        self.received: list[Received] = []
        self.busy_answers = 0
        self._changed = threading.Condition()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            if self.busy.get(address.lower(), 0) > 0:
                self.busy[address.lower()] -= 1
                with self._changed:
                    self.busy_answers += 1
                return "451 4.3.2 busy, try again later"
        if any(text.encode() in envelope.content for text in self.refuse_content):
            return "554 5.7.1 message content rejected"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = getattr(getattr(session, "auth_data", None), "login", None)
        with self._changed:
            self.received.append(Received(
                envelope.mail_from, list(envelope.rcpt_tos), message,
                session.ssl is not None,
                login.decode() if isinstance(login, bytes) else login))
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return self.goodbye

    def wait_for(self, found: Callable[[Received], bool], timeout: float = 30.0) -> Received:
        """The first message ``found`` accepts, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                hit = next((r for r in self.received if found(r)), None)
                if hit is not None:
                    return hit
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.rcpt_tos, r.message["Subject"]) for r in self.received]
                    raise AssertionError(f"no such message within {timeout} s; seen: {seen}")
                self._changed.wait(left)

    def matching(self, found: Callable[[Received], bool]) -> list[Received]:
        with self._changed:
            return [r for r in self.received if found(r)]


def mail_to(mailbox: Mailbox, escalation_id: str, address: str) -> Received:
    """The message about one escalation sent to ``address``, waiting up to 60 s for it."""
    return mailbox.wait_for(lambda r: r.message[ESCALATION_HEADER] == escalation_id
                            and address in r.rcpt_tos, timeout=60)


def bodies(received: Received) -> tuple[str, str]:
    """A message's plain text and HTML parts, their line ends (CRLF, as sent) made LF."""
    text, markup = (received.message.get_body((kind,)) for kind in ("plain", "html"))
    assert text is not None and markup is not None
    return (text.get_content().replace("\r\n", "\n"),
            markup.get_content().replace("\r\n", "\n"))


def password_check(user: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator accepting one user and password."""

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() \
            and auth_data.password == password.encode()
        return AuthResult(success=ok, auth_data=auth_data if ok else None, handled=False)

    return authenticator


def start_smtp(handler: Mailbox, port: int = 0, **kwargs: Any) -> Controller:
    """A running SMTP server on 127.0.0.1 (``port`` 0: any free port; ``.port`` tells)."""
    cls = Port0Controller if port == 0 else Controller
    controller = cls(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate naming localhost and 127.0.0.1 (what a client dials
    must be named), and its key: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
