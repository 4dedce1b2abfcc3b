"""Request bodies of the HTTP API (validated by FastAPI, published in /openapi.json).

Text that comes from tools (names, inputs, outputs, comments) is typed ``Text`` and
``JSONObject`` rather than ``str`` and ``dict[str, Any]``: pydantic refuses a Python string
holding a lone surrogate (a file name that was not UTF-8, sent as its ``\\u`` escape),
and staso keeps such text exactly instead (the store escapes it losslessly).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from ..models import TOOL_NAME_LIMIT

DECISION_ID = r"^[A-Za-z0-9_.:\-]{1,64}$"


def _text_checker(min_length: int, max_length: int) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("Input should be a valid string")
        if not min_length <= len(value) <= max_length:
            raise ValueError(f"String should have {min_length} to {max_length} characters")
        return value
    return check


def Text(max_length: int, min_length: int = 0) -> Any:
    """A string of any text (lone surrogates included), within these lengths."""
    return Annotated[str, PlainValidator(_text_checker(min_length, max_length)),
                     WithJsonSchema({"type": "string", "minLength": min_length,
                                     "maxLength": max_length})]


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("Input should be a valid dictionary")
    return value  # keys are strings: it came from JSON; check_json checks the rest


JSONObject = Annotated[dict[str, Any], PlainValidator(_object),
                       WithJsonSchema({"type": "object", "additionalProperties": True})]


class GuardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool_name: Text(TOOL_NAME_LIMIT, 1)  # type: ignore[valid-type]
    tool_input: JSONObject
    decision_id: str | None = Field(default=None, pattern=DECISION_ID,
                                    description="Retries with the same id get the first answer")
    agent_name: Text(200) | None = None  # type: ignore[valid-type]
    environment: Text(100) = ""  # type: ignore[valid-type]
    context: JSONObject = Field(default_factory=dict)
    wait: bool = Field(default=False, description="The agent will wait for the answer")
    escalation_timeout: float = Field(default=300.0, gt=0, le=7 * 86400)
    timeout: float | None = Field(default=None, gt=0, le=86400, description=(
        "The caller's timeout in seconds: a plugin still deciding near it makes the call "
        "block, naming the plugin, before the caller gives up"))


# where an answer sent to the API came from: the API itself or staso's CLI (the dashboard,
# Slack and e-mail answer through routes of their own, which say so themselves)
ApiVia = Literal["api", "cli"]


# what a standing approval given with an approval may say, published for API users; the
# values are checked against the escalation it answers (``staso.grants.scope_from``)
GrantScope = Annotated[dict[str, Any], PlainValidator(_object), WithJsonSchema({
    "type": "object", "additionalProperties": False,
    "description": "Also allow calls like this one ahead (a standing approval)",
    "properties": {
        "agent": {"type": "string", "description": "the escalation's own agent"},
        "tool": {"type": "string", "description": "the escalation's own tool"},
        "when": {"type": "string", "maxLength": 2000,
                 "description": "a CEL condition on the call, e.g. tool_input.amount <= 2000"},
        "ttl": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                          {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$"}],
                "description": "how long it lives: seconds, or 30m, 1h, 7d (at most 30 days; "
                               "default 1h)"},
        "max_uses": {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                     "description": "how many calls it allows at most"}}})]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Text(200) | None = None  # type: ignore[valid-type]
    comment: Text(10_000) | None = None  # type: ignore[valid-type]
    modified_input: JSONObject | None = None
    # a standing approval: {"ttl": "1h", "max_uses": 20, "when": "tool_input.amount <= 2000"}
    # (checked against the escalation by staso.grants.scope_from: 422 says what is wrong)
    grant: GrantScope | None = None
    via: ApiVia | None = None


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Text(200) | None = None  # type: ignore[valid-type]
    comment: Text(10_000) | None = None  # type: ignore[valid-type]
    via: ApiVia | None = None


class ClaimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(pattern=DECISION_ID)


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=1024 * 1024, description="staso.yaml text")


class ExecutionRecord(BaseModel):
    """A tool's execution outcome, on a guard decision or as an unguarded call."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(pattern=DECISION_ID)
    tool_name: Text(200) | None = None  # type: ignore[valid-type]
    tool_input: JSONObject | None = None
    context: JSONObject = Field(default_factory=dict)
    environment: Text(100) = ""  # type: ignore[valid-type]
    agent_name: Text(200) | None = None  # type: ignore[valid-type]
    execution_status: str = Field(pattern=r"^(ok|error|not_run)$")
    execution_error: Text(10_000) | None = None  # type: ignore[valid-type]
    execution_output: Text(10_000) | None = None  # type: ignore[valid-type]
    execution_ms: float | None = None


class ExecutionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[ExecutionRecord] = Field(max_length=1000)
