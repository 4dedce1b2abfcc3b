"""Secrets: API keys and tokens, AWS secret access keys, private key blocks, and values given
to names like ``password`` or ``api_key``.

The token shapes and the AWS and private-key rules follow Yelp's detect-secrets plugins
(``detect_secrets/plugins/*.py``, Apache-2.0; keyword list from its KeywordDetector, itself
from PyCQA bandit), rewritten so each pattern only starts where a token starts: every
pattern is anchored on a literal or guarded by a look-behind on its own character class, and
every repeat is bounded or cannot re-scan, so the work is linear in the input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Token shapes with a fixed prefix. The look-behind sits after the prefix (the regex engine
# then skips quickly to where the prefix occurs) and says the prefix starts a token.
_PREFIXED = re.compile("|".join((
    r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}",                      # OpenAI, Anthropic
    r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)(?<![A-Za-z0-9].{4})[0-9A-Z]{16}(?![A-Za-z0-9])",
    r"gh[pousr]_(?<![A-Za-z0-9_].{4})[A-Za-z0-9_]{36,}",               # GitHub
    r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,}",
    r"xox[abposr]-(?<![A-Za-z0-9-].{5})[A-Za-z0-9-]{10,}",             # Slack
    r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]{1,40}/B[A-Za-z0-9_]{1,40}"
    r"/[A-Za-z0-9_]{1,80}",
    r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35}",                     # Google
    r"[sr]k_live_(?<![A-Za-z0-9_].{8})[0-9A-Za-z]{16,}",            # Stripe
    r"gl(?<![A-Za-z0-9_-]gl)(?:pat|dt|ft|soat|rt|cbt|imt|ptt|oas|agent)-"
    r"[A-Za-z0-9_-]{20,}",                                              # GitLab
    r"ak_(?<![A-Za-z0-9_]ak_)[A-Za-z0-9]{20,}",                         # staso keys
    r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{34,}",                         # Hugging Face
    r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}",
    r"pypi-AgE(?<![A-Za-z0-9_-]pypi-AgE)[A-Za-z0-9_-]{50,}",
    r"SG\.(?<![A-Za-z0-9_.-]SG\.)[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",  # SendGrid
    r"sq0(?<![A-Za-z0-9_-]sq0)(?:csp|atp)-[0-9A-Za-z_-]{22,43}",         # Square
    r"SK(?<![A-Za-z0-9]SK)[0-9a-f]{32}(?![A-Za-z0-9])",                 # Twilio
    r"AccountKey=[A-Za-z0-9+/=]{88}",                                   # Azure storage
    r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"(?i:bearer)(?<![A-Za-z0-9].{6})[ \t]{1,8}[A-Za-z0-9._~+/-]{20,}=*",
)))
# Shapes that start with a digit or hex run: only at a token start.
_UNPREFIXED = re.compile(
    r"(?<![A-Za-z0-9])(?:[0-9a-f]{32}-us\d{1,2}"                         # Mailchimp
    r"|\d{8,10}:[0-9A-Za-z_-]{35}"                                      # Telegram
    r"|[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27})"  # Discord
    r"(?![A-Za-z0-9_-])")

# Private key blocks (PEM, OpenSSH, PGP, SSH2) and PuTTY key files: masked from the header
# to the matching end line, or to the end of the text when it has none.
_KEY_BEGIN = re.compile(
    r"-{4,5} ?BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}|PuTTY-User-Key-File-\d+:")
_KEY_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}")
_PUTTY_END = re.compile(r"Private-MAC: ?[0-9a-fA-F]{1,128}")

# AWS secret access keys: 40 characters of base64 next to a name that says so, or right after
# an access key id (``'AKIA…', 'wJalr…'`` or the console's CSV), as in detect-secrets.
_AWS_VALUE = r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
_AWS_SECRET = re.compile(
    r"(?i:aws[A-Za-z0-9_. -]{0,20}?(?:key|pwd|pw|password|pass|token)|"
    r"secret[_. -]?access[_. -]?key)[A-Za-z0-9_]{0,10}[\s\"'`:=>,(\]]{1,12}" + _AWS_VALUE
    + r"|(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}[\s\"'`:=,;|()]{1,12}" + _AWS_VALUE)

# ``password = "…"``, ``api_key: …``, ``DB_PASS=…``: detect-secrets' keyword list.
_KEYWORD = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:api_?key|apikey|auth_?key|service_?key|account_?key|db_?key|"
    r"database_?key|priv_?key|private_?key|client_?key|client_?secret|db_?pass|"
    r"database_?pass|key_?pass|password|passwd|pwd|secret|access_?token|auth_?token|"
    r"api_?token|contraseña|contrasena)"
    r"[A-Za-z0-9_]{0,20}[\"'\]]{0,2}[ \t]{0,5}(?::=|=>|==|[:=])[ \t]{0,5}"
    r"([\"'`]?)([^\s\"'`,;]{8,200})")
# A password inside a URL: ``postgres://user:p4ss@host``.
_URL_PASSWORD = re.compile(r"://[^\s:/?#@\[\]\"'<>]{1,256}:([^\s/?#@\[\]\"'<>]{1,256})@")

_PLACEHOLDER = re.compile(
    r"^[$%{<(\[/~*]|\(|://|xxxx|\*\*\*|\.\.\.|changeme|example|placeholder|your[_-]|redacted",
    re.IGNORECASE)
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_NOT_A_VALUE = frozenset({"true", "false", "null", "none", "undefined", "required", "optional"})


def _looks_secret(value: str, quoted: bool) -> bool:
    """A value given to a secret-sounding name is a secret unless it is a placeholder, a
    reference (``$VAR``, ``{{x}}``, ``os.environ[...]``, a call, a path, a URL) or a plain
    word: unquoted values need a digit and a letter, as real passwords and keys have."""
    if value.lower() in _NOT_A_VALUE or _PLACEHOLDER.search(value):
        return False
    if value.isupper() and not _HAS_DIGIT.search(value):
        return False  # YOUR_API_KEY, SECRET_KEY
    return quoted or bool(_HAS_DIGIT.search(value) and _HAS_LETTER.search(value))


def _aws_value_ok(value: str) -> bool:
    """A real secret access key mixes cases; a 40-character hex string is a git SHA."""
    return not value.islower() and not value.isupper() and not value.isdigit()


def _private_keys(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    while (m := _KEY_BEGIN.search(text, pos)) is not None:
        end_re = _PUTTY_END if m.group().startswith("PuTTY") else _KEY_END
        end = end_re.search(text, m.end())
        pos = end.end() if end else len(text)
        yield m.start(), pos


def secrets(text: str) -> Iterator[tuple[int, int]]:
    """Spans of API keys, tokens, AWS secret keys, private key blocks and keyword secrets."""
    yield from map(re.Match.span, _PREFIXED.finditer(text))
    yield from map(re.Match.span, _UNPREFIXED.finditer(text))
    yield from _private_keys(text)
    for m in _AWS_SECRET.finditer(text):
        group = 1 if m.group(1) else 2
        if _aws_value_ok(m.group(group)):
            yield m.span(group)
    for m in _KEYWORD.finditer(text):
        if _looks_secret(m.group(2), bool(m.group(1))):
            yield m.span(2)
    for m in _URL_PASSWORD.finditer(text):
        if _looks_secret(m.group(1), True):
            yield m.span(1)
