"""``with st.conversation("conv-123", requested_by="alice"):`` — context for every guard
call inside (threads and asyncio tasks each see their own, as with any ContextVar; the
framework adapters' tool calls see it too, wherever the framework runs the tool).

``requested_by`` says once who asked for the calls: a rule with ``forbid_self_approval:
true`` then refuses that person's approval of them. It is what the caller says, so take it
from your own authentication (the signed-in user of the chat), never from the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_current: ContextVar[dict[str, Any] | None] = ContextVar("staso_conversation", default=None)


@contextmanager
def conversation(conversation_id: str, *, requested_by: str | None = None,
                 **context: Any) -> Iterator[dict[str, Any]]:
    """Attach ``conversation_id``, ``requested_by`` (who asked, as their approver key is
    named) and any extra keys to the context of guard calls inside. A conversation inside
    another keeps the outer one's keys it does not set."""
    if requested_by is not None:
        if not isinstance(requested_by, str):
            raise TypeError(f"requested_by must be a name, not {type(requested_by).__name__}")
        if not requested_by.strip():
            raise ValueError("requested_by must be a person's name, not blank")
        context["requested_by"] = requested_by.strip()
    merged = {**(_current.get() or {}), "conversation_id": conversation_id, **context}
    token = _current.set(merged)
    try:
        yield merged
    finally:
        _current.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_current.get() or {})
