"""The README's main command: `staso demo --yes` runs unattended, end to end."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def test_demo_yes_runs_the_scripted_agent(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "staso.cli", "demo", "--yes"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any("'amount': 50}) -> ALLOW" in line for line in lines)
    assert any("DROP TABLE customers" in line and "-> BLOCK" in line for line in lines)
    assert any("[REDACTED:ssn]" in line for line in lines)
    assert any("'amount': 5000}) -> ESCALATE" in line for line in lines)
    assert lines[-1].strip().startswith("-> ALLOW (approved)")


def test_demo_with_the_slack_stand_in_shows_the_post_and_approves_in_slack(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "staso.cli", "demo", "--yes",
                           "--slack-stand-in", "--port", "0"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "posted to Slack #approvals" in out
    for shown in ("APPROVAL NEEDED: PROCESS_REFUND", "Agent: refund-agent",
                  "Rule: high_value_payment", '"amount": 5000', "[ Approve ]  [ Deny ]  [ Edit ]",
                  "Open in the dashboard"):
        assert shown in out, shown
    request = Path(re.search(r"as slack_sdk sent it: (\S+)\)", out).group(1))
    assert json.loads(request.read_text())["blocks"][-1]["elements"][0]["action_id"] == \
        "staso_approve"
    assert "-> ALLOW (approved)" in out
    assert "Slack message updated in place: ✅ Approved by demo-manager via Slack" in out


def _demo(*args: str, cwd: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-u", "-m", "staso.cli", "demo", "--port", "0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, stdin=subprocess.DEVNULL)


def test_demo_without_an_answer_times_out_as_denied(tmp_path):
    with socket.socket() as taken:  # its preferred port is in use: it says so, takes another
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-u", "-m", "staso.cli", "demo", "--port",
                                 str(busy), "--timeout", "2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                stdin=subprocess.DEVNULL)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"port {busy} is in use" in out and "instead" in out, out
    last = out.splitlines()[-1].strip()
    assert last.startswith("-> DENIED (timed out): nobody answered in 2 s"), last
    assert "Escalation poll timeout" in last and "stays open in the dashboard" in last
    store = re.search(r"\(store (\S+staso\.db), removed when the demo ends\)", out)
    assert store is not None and not Path(store.group(1)).exists(), out  # nothing left behind


def test_demo_waits_for_a_person_in_the_browser(tmp_path):
    """Approve the demo's $5,000 refund in chromium, as a user of `staso demo` would."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from conftest import CHROMIUM, FLAGS

    proc = _demo("--timeout", "60", cwd=tmp_path)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while not any("waiting for a person" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"demo ended early: {lines} {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", lines[0]).group(1)
        key = re.search(r"approver key: (\S+)", "".join(lines)).group(1)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.goto(url + "/")
            page.fill("#api-key", key)
            page.click("button[type=submit]")
            page.locator(".card button.approve").first.click()
            # the approval shows where it matters: the demo's agent resumes and prints
            # ALLOW (asserted below). The demo then stops its server, so the page's own
            # flash can be overwritten by its next poll failing: not waited for here.
            out, err = proc.communicate(timeout=60)
            browser.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines()[-1].strip().startswith("-> ALLOW (approved)")
