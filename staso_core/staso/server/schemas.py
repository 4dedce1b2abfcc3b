"""Request bodies of the HTTP API (validated by FastAPI, published in /openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DECISION_ID = r"^[A-Za-z0-9_.:\-]{1,64}$"


class GuardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool_name: str = Field(min_length=1, max_length=200)
    tool_input: dict[str, Any]
    decision_id: str | None = Field(default=None, pattern=DECISION_ID,
                                    description="Retries with the same id get the first answer")
    agent_name: str | None = Field(default=None, max_length=200)
    environment: str = Field(default="", max_length=100)
    context: dict[str, Any] = Field(default_factory=dict)
    wait: bool = Field(default=False, description="The agent will wait for the answer")
    escalation_timeout: float = Field(default=300.0, gt=0, le=7 * 86400)


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=10_000)
    modified_input: dict[str, Any] | None = None


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=10_000)


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
    tool_name: str | None = Field(default=None, max_length=200)
    tool_input: dict[str, Any] | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    environment: str = Field(default="", max_length=100)
    agent_name: str | None = Field(default=None, max_length=200)
    execution_status: str = Field(pattern=r"^(ok|error|not_run)$")
    execution_error: str | None = Field(default=None, max_length=10_000)
    execution_output: str | None = Field(default=None, max_length=10_000)
    execution_ms: float | None = None


class ExecutionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[ExecutionRecord] = Field(max_length=1000)
