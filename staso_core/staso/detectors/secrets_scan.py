"""Secrets: API keys and tokens, AWS secret access keys, private key blocks, and values given
to names like ``password`` or ``api_key``.

The token shapes and the AWS and private-key rules follow Yelp's detect-secrets plugins
(``detect_secrets/plugins/*.py``, Apache-2.0; keyword list from its KeywordDetector, itself
from PyCQA bandit), rewritten for attacker-controlled text: each pattern is led by a literal
or a one-character class, so the regex engine skips quickly to where it could start, and a
look-behind right after that says a token starts there; every repeat is bounded or stops at
the first character outside its class, so the work is linear in the input. Values judged in
Python (is ``password=…`` a real secret?) are bounded per call (``MAX_VALUE_CHECKS``).
"""

from __future__ import annotations

import base64
import heapq
import re
from collections.abc import Callable, Iterator
from itertools import pairwise

# Token shapes, each led by a literal prefix: the regex engine skips to where the prefix
# occurs, and the look-behind right after it says the prefix starts a token.
_TOKENS = tuple(re.compile(p) for p in (
    r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}",                      # OpenAI, Anthropic
    r"gh[pousr]_(?<![A-Za-z0-9_].{4})[A-Za-z0-9_]{36,}",               # GitHub
    r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,}",
    r"xox[abposr]-(?<![A-Za-z0-9-].{5})[A-Za-z0-9-]{10,}",             # Slack
    r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]{1,40}/B[A-Za-z0-9_]{1,40}"
    r"/[A-Za-z0-9_]{1,80}",
    r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35,}",  # Google (an over-long one masked whole)
    r"ya29\.(?<![A-Za-z0-9_.-]ya29\.)[0-9A-Za-z_-]{20,}",              # Google OAuth token
    r"GOCSPX-(?<![A-Za-z0-9_-]GOCSPX-)[0-9A-Za-z_-]{20,}",              # Google client secret
    r"hv[sbr]\.(?<![A-Za-z0-9_.-]hv.\.)[0-9A-Za-z_-]{24,}",             # HashiCorp Vault
    r"shp(?<![A-Za-z0-9_]shp)(?:at|ca|pa|ss)_[a-fA-F0-9]{32,}",          # Shopify
    r"do(?<![A-Za-z0-9_]do)[por]_v1_[a-f0-9]{64,}",                      # DigitalOcean
    r"xapp-(?<![A-Za-z0-9-]xapp-)\d-[A-Za-z0-9-]{10,}",                  # Slack app token
    r"EAA(?<![A-Za-z0-9]EAA)[A-Z][A-Za-z0-9]{30,}",                      # Facebook / Meta
    r"AGE-SECRET-KEY-1(?<![A-Za-z0-9-]AGE-SECRET-KEY-1)[0-9A-Z]{58}",    # age
    r"[sr]k_live_(?<![A-Za-z0-9_].{8})[0-9A-Za-z]{16,}",              # Stripe
    r"gl(?<![A-Za-z0-9_-]gl)(?:pat|dt|ft|soat|rt|cbt|imt|ptt|oas|agent)-[A-Za-z0-9_-]{20,}",
    r"ak_(?<![A-Za-z0-9_]ak_)[A-Za-z0-9]{20,}",                         # staso keys
    r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{34,}",                         # Hugging Face
    r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36,}",
    r"pypi-AgE(?<![A-Za-z0-9_-]pypi-AgE)[A-Za-z0-9_-]{50,}",
    r"SG\.(?<![A-Za-z0-9_.-]SG\.)[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43,}",  # SendGrid
    r"sq0(?<![A-Za-z0-9_-]sq0)(?:csp|atp)-[0-9A-Za-z_-]{22,43}",         # Square
    r"SK(?<![A-Za-z0-9]SK)[0-9a-f]{32}(?![A-Za-z0-9])",                 # Twilio
    r"AccountKey=[A-Za-z0-9+/=]{88}",                                   # Azure storage
    r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
))
# Led by their middle part: ``<32 hex>-us<n>`` (Mailchimp), ``<8-10 digits>:<35>`` (Telegram).
_MAILCHIMP = re.compile(r"-us(?<![A-Za-z0-9][0-9a-f]{32}-us)(?<=[0-9a-f]{32}-us)\d{1,2}"
                        r"(?![A-Za-z0-9_-])")
_TELEGRAM = re.compile(r":(?<=\d{8}:)[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")
_DIGITS_BEFORE = re.compile(r"(?<![A-Za-z0-9])\d{8,10}:")

# AWS access key ids (detect-secrets' AWSKeyDetector), and the secret access key when it
# follows the id (``'AKIA…', 'wJalr…'`` or the console's CSV).
_AWS_VALUE = r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
_AWS_KEY_ID = re.compile(
    r"A(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)(?<![A-Za-z0-9].{4})[0-9A-Z]{16}(?![A-Za-z0-9])"
    r"(?:[\s\"'`:=,;|()]{1,12}" + _AWS_VALUE + ")?")
# Matched on ASCII-lowercased bytes (same offsets): a secret access key after a name that
# says so, as detect-secrets' ``aws.{0,20}?(key|pwd|pw|password|pass|token)`` rule.
_AWS_NAMED = tuple(re.compile(p.encode() + rb"[a-z0-9_]{0,10}[\s\"'`:=>,(\]]{1,12}"
                              + _AWS_VALUE.replace("A-Z", "").encode())
                   for p in (r"aws[a-z0-9_. -]{0,20}?(?:key|pwd|pw|password|pass|token)",
                             r"secret[_. -]?access[_. -]?key",
                             # ``key: wJalr…``: any key, secret or token given a value of
                             # exactly an AWS secret key's shape (40 base64, mixed case)
                             r"(?:k(?<![a-z0-9]k)ey|s(?<![a-z0-9]s)ecret|t(?<![a-z0-9]t)oken)"))
_BEARER = re.compile(rb"bearer(?<![a-z0-9]bearer)[ \t]{1,8}([a-z0-9._~+/-]{20,}=*)")

# Private key blocks (PEM, OpenSSH, PGP, SSH2) and PuTTY key files: masked from the header
# to the matching end line, or to the end of the text when it has none.
# Each header led by a literal (``----``, ``PuTTY``, not ``-{4,5}``): the regex engine skips
# to it in C, where a repeat or an alternation is tried at every position.
_PEM_BEGIN = re.compile(r"-----? ?BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}")
_PUTTY_BEGIN = re.compile(r"PuTTY-User-Key-File-\d+:")
_KEY_BEGIN = re.compile(_PEM_BEGIN.pattern + "|" + _PUTTY_BEGIN.pattern)
_KEY_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}")
_PUTTY_END = re.compile(r"Private-MAC: ?[0-9a-fA-F]{1,128}")

# ``password = "…"``, ``api_key: …``, ``DB_PASS=…``: detect-secrets' keyword list, matched on
# ASCII-lowercased bytes. The first-letter class lets the engine skip most positions; the
# look-behind after it keeps matches to word starts.
_SEP = rb"[_-]?"
_VALUE_AFTER = (rb"[\"'\]]{0,2}(?:[ \t]{0,5}(?::=|=>|==|[:=])[ \t]{0,5}"
                rb"|[ \t]{1,5}(?:is|was)[ \t]{1,5})([\"'`]?)([^\s\"'`,;]{8,200})")
_NAME = re.compile(rb"[a-z0-9_-]+")
_KEYWORD = re.compile(
    rb"(?:a(?<![a-z0-9]a)(?:pi_?key|pikey|uth_?key|ccount_?key|ccess_?token|uth_?token|pi_?token)"
    rb"|c(?<![a-z0-9]c)(?:lient_?key|lient_?secret|ontrase\?a|ontrasena|ookie)"
    rb"|d(?<![a-z0-9]d)(?:b_?key|atabase_?key|b_?pass|atabase_?pass)"
    rb"|k(?<![a-z0-9]k)ey_?pass"
    rb"|p(?<![a-z0-9]p)(?:riv_?key|rivate_?key|assword|asswd|wd|ass(?![a-z])|w(?![a-z]))"
    rb"|s(?<![a-z0-9]s)(?:ervice_?key|ecret))".replace(b"_?", _SEP)
    + rb"[a-z0-9_-]{0,20}" + _VALUE_AFTER)
# The same names inside a longer one (``PGPASSWORD``, ``SMTP_PASSWORD``, ``refresh_token``,
# ``x-api-key``): led by the name, the look-behind after it says a name runs on before it.
_KEYWORD_INNER = re.compile(
    rb"(?:p(?<=[a-z0-9_-]p)ass(?:word|wd)|s(?<=[a-z0-9_-]s)ecret(?![a-z])"
    rb"|t(?<=[a-z0-9_-]t)oken(?![a-z])|a(?<=[a-z0-9_-]a)pi[_-]?key)[a-z0-9_-]{0,20}" + _VALUE_AFTER)
# ``Authorization: Basic <base64 of user:password>``
_BASIC = re.compile(rb"basic(?<![a-z0-9]basic)[ \t]{1,8}([a-z0-9+/]{8,400}={0,2})(?![a-z0-9+/=])")
# A password on a command line: ``mysql -u root -pS3cret``, ``sshpass -p S3cret ssh host``,
# ``curl -u user:S3cret`` / ``--user user:S3cret`` (``--password=...`` is a keyword above;
# ``docker run -u 1000:1000`` is a user and a group).
# Led by the flag (a client's name led the pattern and cost 200 steps at each one); the
# client is looked for earlier in the same command (``_flag_judge``).
_COMMAND_PASSWORD = re.compile(
    r"-(?<![\w-]-)(?:p([^\s\"'`]{4,200})|(?:u|-user)[ \t=]+['\"]?[^\s:'\"@/]{1,100}"
    r":([^\s'\"@]{4,200}))")
_FLAG_CLIENTS = {1: ("mysql", "mariadb", "mysqldump", "mysqladmin"), 2: ("curl",)}
_SSHPASS = re.compile(r"sshpass(?<![\w-]sshpass)[ \t]+-p[ \t]*['\"]?([^\s\"'`]{4,200})")
_COMMAND_END = re.compile(r"[\n|;&]")
# A value in an element named like a secret: ``<password>S3cret</password>``, ``<db:token>``.
# Tried only just before the words such names hold (the name runs up to 40 characters).
_TAGGED = re.compile(rb"<([a-z0-9_.:-]{1,40})>([^<>\n]{4,200})</\1>")
_TAG_LEADS = (b"pass", b"pw", b"secret", b"token", b"key", b"auth", b"cred", b"cookie")
# A password inside a URL: ``postgres://user:p4ss@host``.
_URL_PASSWORD = re.compile(r"://[^\s:/?#@\[\]\"'<>]{0,256}:([^\s/?#@\[\]\"'<>]{1,256})@")

_REFERENCE_STARTS = tuple("$%{<([/~*")
_PLACEHOLDER_PARTS = ("(", "://", "xxxx", "***", "...", "changeme", "example", "placeholder",
                      "your_", "your-", "redacted", "arn:", "_here")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_NOT_A_VALUE = frozenset({"true", "false", "null", "none", "undefined", "required", "optional"})


def _looks_secret(value: str, quoted: bool) -> bool:
    """A value given to a secret-sounding name is a secret unless it is a placeholder, a
    reference (``$VAR``, ``{{x}}``, ``os.environ[...]``, a call, a path, a URL) or a plain
    word: unquoted values need a digit and a letter, as real passwords and keys have."""
    low = value.lower()
    if low in _NOT_A_VALUE or value.startswith(_REFERENCE_STARTS) or any(
            part in low for part in _PLACEHOLDER_PARTS):
        return False
    if value.isupper() and not _HAS_DIGIT.search(value):
        return False  # YOUR_API_KEY, SECRET_KEY
    return quoted or bool(_HAS_DIGIT.search(value) and _HAS_LETTER.search(value))


def _aws_value_ok(value: str) -> bool:
    """A real secret access key mixes cases; a 40-character hex string is a git SHA."""
    return not value.islower() and not value.isupper() and not value.isdigit()


def _key_begin(text: str, pos: int,
               heads: dict[re.Pattern[str], re.Match[str] | None]) -> re.Match[str] | None:
    """The first key header at or after ``pos``. ``heads`` holds each header pattern's last
    match, searched again only once ``pos`` has passed it: every search goes forward."""
    for pattern, m in heads.items():
        if m is not None and m.start() < pos:
            heads[pattern] = pattern.search(text, pos)
    return min(filter(None, heads.values()), key=re.Match.start, default=None)


def _private_keys(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    heads = {pattern: pattern.search(text) for pattern in (_PEM_BEGIN, _PUTTY_BEGIN)}
    while (m := _key_begin(text, pos, heads)) is not None:
        end_re = _PUTTY_END if m.group().startswith("PuTTY") else _KEY_END
        end = end_re.search(text, m.end())
        pos = end.end() if end else len(text)
        yield m.start(), pos




def _lead(pattern: str) -> str:
    """The literal text every match of ``pattern`` holds near its start (after a leading
    character class): ``gh[pousr]_...`` -> ``gh``, ``[sr]k_live_...`` -> ``k_live_``."""
    i = pattern.index("]") + 1 if pattern.startswith("[") else 0
    out: list[str] = []
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in ".^$*+?{}[]()|\\":
            break
        out.append(c)
        i += 1
    if i < len(pattern) and pattern[i] in "*?{" and out:
        out.pop()  # a quantified last character may be absent
    return "".join(out)


# A substring test in C skips a pattern whose literal is absent: a string costs a few tests,
# not ~25 scans. A pattern without a literal lead ("") always runs.
_TOKEN_LEADS = tuple((_lead(p.pattern), p) for p in _TOKENS)
_AWS_LEADS = ("A3T", "ABIA", "ACCA", "AKIA", "ASIA")
# Every value judged in ``_checked_values`` follows one of these (lower-cased) words or a URL.
_VALUE_LEADS = ("://", "bearer", "aws", "secret", "key", "token", "pass", "pwd", "pw",
                "mysql", "mariadb", "curl", "<",
                "contras", "auth", "cookie", "basic")


HOLDS_FROM = 4096

# ``secrets`` finds nothing in a text whose lower-cased form holds none of these: every token
# pattern needs its lead (``lead in text`` gates it; that implies ``lead.lower() in
# text.lower()``, since lower() maps each character on its own and the leads are ASCII),
# Mailchimp needs "-us", Telegram eight digits and a ":" (``_TELEGRAM``'s look-behind; lower()
# leaves digits and ":" as they are), AWS ids one of ``_AWS_LEADS``, key blocks "BEGIN" or
# "PuTTY", and ``_checked_values`` runs only when the lower-cased text holds a value lead.
# Every branch is led by a literal (the Telegram one by its ":"), so the regex engine skips in
# C to the positions holding a first character of one.
_HINT_LEADS = {lead.lower() for lead in (*(lead for lead, _ in _TOKEN_LEADS), "-us",
                                         *_AWS_LEADS, "BEGIN", "PuTTY", *_VALUE_LEADS)}
# a lead holding a shorter one adds nothing ("github_pat_" holds "gh", "pwd" holds "pw")
_SECRET_HINT = re.compile("|".join(sorted(
    re.escape(lead) for lead in _HINT_LEADS
    if not any(other != lead and other in lead for other in _HINT_LEADS))) + r"|:(?<=\d{8}:)")


def may_hold_secret(text: str) -> bool:
    """False only when ``secrets(text)`` finds nothing (see ``_SECRET_HINT``). One scan of a
    ~50-branch alternation: meant for short texts (below ``HOLDS_FROM``)."""
    return _SECRET_HINT.search(text.lower()) is not None


def holds(text: str, lead: str, chars: dict[str, bool]) -> bool:
    """``lead in text``, answered at once when a character of ``lead`` is not in ``text``.
    Whether a character is in it is one fast scan, remembered in ``chars``; a multi-character
    substring test scans the whole text when absent, and ~40 of them cost more than the
    patterns they spare on crafted text of a few distinct characters. Below ``HOLDS_FROM``
    characters a plain ``in`` is cheaper (and callers write it inline: a call per lead costs
    more than the test)."""
    for c in lead:
        present = chars.get(c)
        if present is None:
            present = chars[c] = c in text
        if not present:
            return False
    return lead in text


def secrets(text: str) -> Iterator[tuple[int, int]]:
    """Spans of API keys, tokens, AWS secret keys, private key blocks and keyword secrets."""
    short = len(text) < HOLDS_FROM
    if short:
        tokens = [pattern for lead, pattern in _TOKEN_LEADS if lead in text]
    else:
        chars: dict[str, bool] = {}
        tokens = [pattern for lead, pattern in _TOKEN_LEADS if holds(text, lead, chars)]
    for pattern in tokens:
        yield from map(re.Match.span, pattern.finditer(text))
    if "-us" in text:
        for m in _MAILCHIMP.finditer(text):
            yield m.start() - 32, m.end()
    if ":" in text:
        for m in _TELEGRAM.finditer(text):
            bot = _DIGITS_BEFORE.search(text, max(0, m.start() - 10), m.start() + 1)
            if bot is not None and bot.end() == m.start() + 1:
                yield bot.start(), m.end()
    if any(lead in text for lead in _AWS_LEADS):
        for m in _AWS_KEY_ID.finditer(text):
            yield m.start(), m.start() + 20
            if m.group(1) and _aws_value_ok(m.group(1)):
                yield m.span(1)
    if "BEGIN" in text or "PuTTY" in text:
        yield from _private_keys(text)
    low = text.lower()
    if any(lead in low for lead in _VALUE_LEADS) if short else \
            any(holds(low, lead, {}) for lead in _VALUE_LEADS):
        yield from _checked_values(text)


MAX_VALUE_CHECKS = 2_000


def _checked_values(text: str) -> Iterator[tuple[int, int]]:
    """Values judged in Python (keyword, AWS-name and URL-password matches). Past
    ``MAX_VALUE_CHECKS`` of them the rest of the string counts as one secret: a crafted
    string of ``password=…`` pairs cannot make the check slow, nor get a secret through."""
    low = text.encode("ascii", "replace").lower()  # one byte per character: same offsets
    candidates = heapq.merge(
        ((m.start(), m.span(1), _url_password) for m in _URL_PASSWORD.finditer(text)),
        ((m.start(), m.span(1), _url_password) for m in _SSHPASS.finditer(text)),
        ((m.start(), m.span(m.lastindex or 1), _flag_judge(text, m))
         for m in _COMMAND_PASSWORD.finditer(text)),
        ((m.start(), m.span(2), _keyed_secret) for m in (
            _near(_TAGGED, low, _TAG_LEADS, 41) if b"</" in low else ())
         if key_kind(m.group(1).decode()) & KEY_SECRET),
        *(((m.start(), m.span(1), _aws_value) for m in _near(named, low, leads))
          for named, leads in zip(_AWS_NAMED, _AWS_NAMED_LEADS, strict=True)),
        ((m.start(), m.span(1), _bearer_value) for m in _BEARER.finditer(low)),
        ((m.start(), m.span(1), _basic_value) for m in _BASIC.finditer(low)),
        *(((m.start(), m.span(2), _named_judge(low, m)) for m in _near(keyword, low, leads))
          for keyword, leads in ((_KEYWORD, _KEYWORD_LEADS), (_KEYWORD_INNER, _KEYWORD_LEADS))
          if _gives_values(low)),
        key=lambda candidate: candidate[0])
    for checks, (start, (vstart, vend), judge) in enumerate(candidates):
        if checks >= MAX_VALUE_CHECKS:
            yield start, len(text)
            return
        if judge(text[vstart:vend]):
            yield (start if judge is _bearer_value else vstart), vend


# Every keyword match holds one of these words within _REACH characters of its start
# (``database_pass``: 9); every AWS-named match starts with one of its leads (None: the
# pattern is led by a literal already, and scanned as it is).
_KEYWORD_LEADS = (b"key", b"token", b"secret", b"pass", b"pw", b"cookie", b"contras")
_AWS_NAMED_LEADS: tuple[tuple[bytes, ...] | None, ...] = (None, None,
                                                          (b"key", b"secret", b"token"))
_REACH = 12
# Past this many lead words in a text, trying the positions before each costs more than a
# scan: the pattern scans the text instead (same matches, linear either way).
MAX_LEADS = 4096


def _near(pattern: re.Pattern[bytes], low: bytes, leads: tuple[bytes, ...] | None,
          reach: int = _REACH) -> Iterator[re.Match[bytes]]:
    """``pattern.finditer(low)``, trying only the positions up to ``reach`` before a lead
    word (found by ``bytes.find``, in C). A pattern led by a letter class is otherwise tried
    at every such letter: ~15 ms a megabyte each for three of them on random text. Positions
    are tried in order, each once, and a match is never overlapped: finditer's matches."""
    if leads is None:
        yield from pattern.finditer(low)
        return
    hits: set[int] = set()
    for lead in leads:
        i = low.find(lead)
        while i >= 0:
            hits.add(i)
            if len(hits) > MAX_LEADS:
                yield from pattern.finditer(low)
                return
            i = low.find(lead, i + 1)
    tried = 0  # every position below this was tried, or lies inside a match
    for q in sorted(hits):
        pos = max(tried, q - reach)
        while pos <= q:
            m = pattern.match(low, pos)
            if m is None:
                pos += 1
                continue
            yield m
            pos = max(m.end(), pos + 1)
        tried = max(tried, pos)


def _named_judge(low: bytes, m: re.Match[bytes]) -> Callable[[str], bool]:
    """The judge for a keyword match: none when the name is about a secret rather than one
    (``password_hash``, ``secret_arn``, ``token_type``)."""
    name = _NAME.match(low, m.start())
    last = re.split(rb"[_-]+", name.group())[-1] if name else b""
    if last.decode() in _NOT_SECRET_LAST:
        return _never
    return _quoted_value if m.group(1) else _bare_value


def _never(value: str) -> bool:
    return False


def _bearer_value(value: str) -> bool:
    """A bearer token, unless a placeholder (``Bearer YOUR_TOKEN_HERE``, ``<token>``)."""
    return _looks_secret(value, quoted=True)


def _basic_value(value: str) -> bool:
    """``Basic`` credentials: base64 of ``user:password``."""
    try:
        return b":" in base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        return False


def _gives_values(low: bytes) -> bool:
    """Whether a keyword can be given a value here at all (``_VALUE_AFTER``: a ``:`` or
    ``=``, or "is"/"was" after a space or tab): text of keywords alone costs no scan."""
    return b":" in low or b"=" in low or b" is" in low or b" was" in low or \
        b"\tis" in low or b"\twas" in low


def _flag_judge(text: str, m: re.Match[str]) -> Callable[[str], bool]:
    """``-pS3cret`` is a password after mysql (mariadb, mysqldump, mysqladmin), ``-u
    user:S3cret`` after curl: the flag's own client, earlier in the same command (at most
    200 characters back). Elsewhere (``docker run -p8080:80``, ``-u 1000:1000``) it is not.
    Each flag is one of the bounded value checks."""
    start = m.start()
    lo = max(0, start - 200)
    for name in _FLAG_CLIENTS[m.lastindex or 1]:
        at = text.rfind(name, lo, start)
        if at >= 0 and (at == 0 or not (text[at - 1].isalnum() or text[at - 1] in "_-")) \
                and _COMMAND_END.search(text, at, start) is None:
            return _url_password
    return _never


def _url_password(value: str) -> bool:
    return _looks_secret(value, quoted=True)


def _quoted_value(value: str) -> bool:
    return _looks_secret(value, quoted=True)


def _bare_value(value: str) -> bool:
    return _looks_secret(value, quoted=False)


def _aws_value(value: str) -> bool:
    return _aws_value_ok(value)


# --- values judged with their key ---------------------------------------------------------
# A structured input says what a value is by its key: ``{"password": "hunter2hunter2"}``
# holds a password as surely as ``password=hunter2hunter2`` does. The key names are
# detect-secrets' keyword list and staso's masking patterns (``masking.DEFAULT_PATTERNS``),
# judged word by word (``DB_PASSWORD``, ``apiKey``, ``x-api-key`` and ``PGPASSWORD`` alike).

class Keyed(str):
    """A string value together with the key it was given under (``jsonutil`` and the
    redaction hand these to the detectors). Equal to, and hashed as, the value itself."""

    key: str


KEY_SECRET, KEY_SSN, KEY_INSPECT = 1, 2, 4
_KEY_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^\W\d_]+")
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "pass", "pw", "passphrase", "secret", "token", "credential",
    "credentials", "cookie", "authorization", "apikey", "contrasena", "contraseña",
    "privatekey", "passcode", "sessionid"})
_SECRET_ENDINGS = ("password", "passwd", "pwd", "secret", "token", "apikey", "cookie",
                   "credentials", "privatekey")  # pgpassword, accesstoken, xapikey
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("priv", "key"), ("auth", "key"), ("access", "key"),
    ("client", "key"), ("service", "key"), ("account", "key"), ("db", "key"),
    ("database", "key"), ("session", "id"), ("session", "key"), ("signing", "key"),
    ("encryption", "key"), ("master", "key")})
# ``password_hash``, ``secret_arn``, ``token_type``, ``max_tokens``: about a secret, not one
_NOT_SECRET_LAST = frozenset({
    "hash", "hashed", "digest", "arn", "name", "type", "url", "uri", "path", "file", "length",
    "len", "count", "policy", "field", "label", "hint", "format", "version", "expires",
    "expiry", "expiration", "ttl", "min", "max", "strength", "enabled", "required", "prompt",
    "reset", "rotation", "header", "at", "set", "changed", "updated", "created", "limit"})
# A key that cannot hold a finding of any pack: letters, digits, ``_`` and ``-``, shorter
# than every token shape (20) and with fewer digits than the shortest number a pack looks for
# (an SSN's 9; ``item_1234`` is plain): such keys are not inspected as text.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,19}")


def _plain_key(key: str) -> bool:
    return _PLAIN_KEY.fullmatch(key) is not None and sum(map(str.isdigit, key)) < 9
_KEY_CACHE: dict[str, int] = {}
_KEY_CACHE_SIZE = 32768  # keys of up to 256 characters: 8 MB at most
# Every secret or SSN key name holds one of these (see the word lists above).
_KEY_HINTS = ("pass", "pw", "secret", "token", "key", "cookie", "auth", "cred", "ssn",
              "social", "session", "sid", "contras", "priv", "passcode")
_KEY_HINT = re.compile("|".join(_KEY_HINTS), re.IGNORECASE)


def key_kind(key: str) -> int:
    """``KEY_SECRET`` when the key names a secret, ``KEY_SSN`` when it names an SSN, and
    ``KEY_INSPECT`` when the key itself could hold something a pack looks for (then it is
    judged as text: a key cannot be redacted in place, so a finding there blocks)."""
    kind = _KEY_CACHE.get(key)
    if kind is None:
        # most keys: plain, and no word of a secret or an SSN in them
        plain = _plain_key(key) and _KEY_HINT.search(key) is None
        kind = 0 if plain else _key_kind(key)
        if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
            _KEY_CACHE.clear()  # keys can be model-made: keep the cache bounded
        if len(key) <= 256:
            _KEY_CACHE[key] = kind
    return kind


def _key_kind(key: str) -> int:
    kind = 0 if _plain_key(key) else KEY_INSPECT
    words = [w.lower() for w in _KEY_WORDS.findall(key[:256])]
    if not words or words[-1] in _NOT_SECRET_LAST or "page" in words:  # next_page_token: a cursor
        return kind
    if words[-1] == "ssn" or ("social", "security") in pairwise(words):
        return kind | KEY_SSN
    if any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words) or \
            not _SECRET_PAIRS.isdisjoint(pairwise(words)):
        return kind | KEY_SECRET
    return kind


def keyed(value: str, key: str) -> str:
    """``value`` as the detectors should see it under ``key``: a ``Keyed`` string when the
    key names a secret or an SSN, else ``value`` itself."""
    if not key_kind(key) & (KEY_SECRET | KEY_SSN):
        return value
    text = Keyed(value)
    text.key = key
    return text


_KEYED_SSN = re.compile(r"\s*(\d\d\d(?<!000)(?<!666)(?<!9\d\d))[-\u2013. ]?(?!00)(\d\d)[-\u2013. ]?"
                        r"(?!0000)(\d{4})\s*")


def keyed_findings(text: Keyed, names: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """The whole value as a finding when its key names a secret (``api_key``) and the value
    looks like one (not a placeholder, reference or boolean), or its key names an SSN
    (``ssn``) and it holds nine digits."""
    kind, end = key_kind(text.key), len(text)
    if kind & KEY_SECRET and "api_key" in names and _keyed_secret(text.strip()):
        return [("api_key", 0, end)]
    if kind & KEY_SSN and "ssn" in names and _KEYED_SSN.fullmatch(text):
        return [("ssn", 0, end)]
    return []


# the value of a named field is delimited: only whole-value placeholders are let off (the
# AWS documentation's key ends in EXAMPLEKEY and is a secret's shape all the same)
_KEYED_PLACEHOLDER_PARTS = tuple(p for p in _PLACEHOLDER_PARTS if p not in ("example", "("))
_KEYED_NOT_A_VALUE = _NOT_A_VALUE | {"example", "sample", "test", "secret", "password",
                                     "token", "none given", "n/a", "tbd", "todo"}


def _keyed_secret(value: str) -> bool:
    low = value.lower()
    if len(value) < 4 or low in _KEYED_NOT_A_VALUE or value.startswith(_REFERENCE_STARTS) \
            or any(part in low for part in _KEYED_PLACEHOLDER_PARTS):
        return False
    return not (value.isupper() and not _HAS_DIGIT.search(value))


def opens_private_key(text: str) -> bool:
    """Whether ``text`` holds a private key header whose end line is not in it: a key split
    across values (``["-----BEGIN RSA PRIVATE KEY-----", "MIIE...", ...]``), whose body the
    values after it hold."""
    if "PRIVATE KEY" not in text and "PuTTY-User-Key-File" not in text:
        return False
    return bool(_KEY_BEGIN.search(text)) and not closes_private_key(text)


def closes_private_key(text: str) -> bool:
    """Whether ``text`` holds a private key's end line."""
    return bool(_KEY_END.search(text) or _PUTTY_END.search(text))
