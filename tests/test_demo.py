"""The README's main command: `staso demo --yes` runs unattended, end to end."""

from __future__ import annotations

import subprocess
import sys


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
