from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import staso as st

os.environ.pop("STASO_BASE_URL", None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded staso on a fresh SQLite file, with the default policy."""
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    st.init(agent_name="refund-agent", home=tmp_path)
    yield tmp_path
    st.shutdown()


def make_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "staso.yaml"
    path.write_text(text)
    return path
