"""``with st.conversation("conv-123"):`` — context for every guard call inside (threads and
asyncio tasks each see their own, as with any ContextVar)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_current: ContextVar[dict[str, Any] | None] = ContextVar("staso_conversation", default=None)


@contextmanager
def conversation(conversation_id: str, **context: Any) -> Iterator[dict[str, Any]]:
    """Attach ``conversation_id`` (and any extra keys) to the context of guard calls inside."""
    merged = {**(_current.get() or {}), "conversation_id": conversation_id, **context}
    token = _current.set(merged)
    try:
        yield merged
    finally:
        _current.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_current.get() or {})
