"""Protected paths: system configuration, keys and credentials, secrets files."""

from __future__ import annotations

import re

_PROTECTED = re.compile(
    r"""(?:^|[\s'"=:(,])(?:
        /etc(?:/|$)|/boot(?:/|$)|/sys(?:/|$)|/proc(?:/|$)|/root(?:/|$)|/dev/(?!null\b|zero\b|stdout\b|stderr\b)|
        /var/run/secrets(?:/|$)|/var/lib/(?:postgresql|mysql)(?:/|$)|
        (?:~|\$HOME|/home/[^/\s]+|/Users/[^/\s]+)/\.(?:ssh|aws|gnupg|kube|docker|netrc|pgpass|npmrc|pypirc|git-credentials)(?:/|$|\b)|
        (?:\S*/)?\.ssh/(?:id_\w+|authorized_keys|known_hosts)|
        (?:\S*/)?id_(?:rsa|dsa|ecdsa|ed25519)(?:\.pub)?$|
        (?:\S*/)?\.env(?:\.(?!example\b|sample\b|template\b|dist\b)\w+)?$
    )""",
    re.VERBOSE | re.MULTILINE,
)


def is_protected_path(text: str) -> bool:
    """True when ``text`` names (or contains) a path to system config, keys or secrets."""
    if not text:
        return False
    return bool(_PROTECTED.search(text))
