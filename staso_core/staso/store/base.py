"""What a store backend provides: the interface the decision service, the server and the
waiting code use, so none of them knows which database is underneath.

The SQLAlchemy store (``staso.store.Store``: SQLite and PostgreSQL) is the one backend
today; another implements these methods and its own change feed (a
``staso.waiting.ChangeFeed`` subclass) in a folder of its own. API keys are made by
``staso.store.keys.create_key`` and kept by the backend, which sees only their hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..approvers import Approver
from ..decision_filters import DecisionFilter, DecisionPage
from ..grants import Grant
from ..models import Escalation
from ..waiting import ChangeFeed
from .keys import ApiKey
from .links import AnswerLink
from .notices import Notice


class StoreBackend(Protocol):
    # -- escalations --------------------------------------------------------------------
    def get_escalation(self, escalation_id: str) -> Escalation:
        """The escalation as it stands (timed out once past its expiry); raises
        EscalationNotFound."""
        ...

    def list_escalations(self, *, status: str | None = None, agent: str | None = None,
                         tool: str | None = None, rule: str | None = None,
                         limit: int = 100, before: str | None = None) -> list[Escalation]:
        """Newest first, after timing out those past their expiry; ``before``: only those
        older than that escalation (EscalationNotFound if there is none)."""
        ...

    def count_escalations(self, status: str) -> int: ...

    def open_escalation(self, *, fingerprint: str, decision_id: str, values: dict[str, Any],
                        expires_at: float, claim_window: float, extend: bool = False,
                        now: float | None = None) -> tuple[Escalation, str]:
        """Find or create a call's escalation atomically; how is ``existing``, ``claimed``,
        ``pending`` or ``created``."""
        ...

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None = None,
                modified_input: dict[str, Any] | None = None, via: str | None = None,
                approver: Approver | None = None, grant: dict[str, Any] | None = None,
                now: float | None = None) -> Escalation:
        """One person's answer, in one transaction: checked against the escalation's
        approvers (NotAnApprover), counted toward its quorum (the same person twice, or an
        answered or expired escalation: EscalationConflict), resolving it once the quorum
        is met or on a denial; ``grant`` (a checked scope) is written with the final
        approval. ``via``: where the answer came from (api, cli, dashboard, slack, email)."""
        ...

    def last_answer(self, fingerprint: str, since: float) -> Escalation | None:
        """The newest person's answer (approved or denied) to this call since ``since``:
        a standing approval never overrides a person's answer to the very call."""
        ...

    def expire(self, escalation_id: str, now: float | None = None
               ) -> tuple[Escalation, bool]:
        """Time out one escalation if due; True if this call timed it out."""
        ...

    def claim(self, escalation_id: str, decision_id: str, now: float | None = None) -> bool:
        """Use up an answered escalation for one call; False if another call used it."""
        ...

    def changes(self) -> ChangeFeed:
        """A new change feed: it wakes waiters when an escalation changes, here or in any
        other process using the same database."""
        ...

    # -- decision log -------------------------------------------------------------------
    def write_decisions(self, rows: Iterable[dict[str, Any]],
                        updates: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        """Insert rows (a retried one changes nothing) and apply updates, all or none.
        Raises StoreUnavailable when the database cannot be reached (try again later);
        any other error means these records were refused."""
        ...

    def get_decision(self, decision_id: str) -> dict[str, Any] | None: ...

    def decision_agents(self, decision_ids: list[str]) -> dict[str, str]:
        """The agent name of each of these decisions that is recorded (one read)."""
        ...

    def list_decisions(self, *, limit: int = 100, tool: str | None = None
                       ) -> list[dict[str, Any]]: ...

    # -- reading the decision log (``decisions.py``) --------------------------------------
    def query_decisions(self, filters: DecisionFilter) -> DecisionPage:
        """One page of decisions matching ``filters``, newest first; its ``next_cursor``
        (opaque) asks for the next page, unaffected by decisions written meanwhile."""
        ...

    def decision_overview(self, since: float, until: float,
                          now: float | None = None) -> dict[str, Any]:
        """Decisions over time by action, top rules, escalations' time to resolution and
        the pending count, for ``since``..``until`` (computed by the database)."""
        ...

    # -- API keys (made by ``keys.create_key``; only hashes are kept) -------------------
    def add_key(self, record: ApiKey, key_hash: str) -> None: ...

    def key_by_hash(self, digest: str) -> tuple[ApiKey, str] | None:
        """The live key with this hash and the hash, or None (revoked or unknown)."""
        ...

    def key_by_id(self, key_id: str) -> tuple[ApiKey, str] | None: ...

    def live_keys(self) -> dict[str, tuple[ApiKey, str]]:
        """Every live key by its hash (the server holds the table in memory)."""
        ...

    def list_keys(self) -> list[tuple[ApiKey, float | None]]:
        """Every key with when it was revoked (None: live), oldest first."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """False if there was no live key with this id."""
        ...

    def bind_key(self, key_id: str, agents: str) -> bool:
        """Let a live agent key act only for agent names matching ``agents``; False if
        there is no live agent key with this id."""
        ...

    def link_key(self, key_id: str, *, slack_user: str | None = None,
                 email: str | None = None) -> bool:
        """Let a Slack user or an e-mail address answer as this live approver or admin key;
        False if there is none with this id."""
        ...

    def key_for_person(self, *, slack_user: str | None = None, email: str | None = None
                       ) -> tuple[ApiKey, str] | None:
        """The live approver or admin key a Slack user or e-mail address answers as."""
        ...

    def set_groups(self, key_id: str, groups: Iterable[str]) -> bool:
        """Replace a live approver or admin key's groups; False if there is none."""
        ...

    def approver_named(self, name: str) -> tuple[str, ...]:
        """The groups of the live approver and admin keys with this name."""
        ...

    # -- standing approvals (``grants.py``) ----------------------------------------------
    def live_grants(self, agent_name: str, tool_name: str, rule_name: str,
                    now: float | None = None) -> list[Grant]:
        """Grants still usable for this agent's calls of this tool escalated by this rule."""
        ...

    def use_grant(self, grant_id: str, now: float | None = None) -> Grant | None:
        """Count one use atomically; the grant as it was before, or None if it died."""
        ...

    def get_grant(self, grant_id: str) -> Grant | None: ...

    def list_grants(self, *, live_only: bool = False, limit: int = 200,
                    now: float | None = None) -> list[Grant]: ...

    def revoke_grant(self, grant_id: str, *, by: str, now: float | None = None) -> bool:
        """End a grant at once; False if there is none with this id or it was revoked."""
        ...

    # -- the approval channels' queue (``notices.py``) -----------------------------------
    def expire_due(self, now: float | None = None) -> list[str]:
        """Time out every pending escalation past its expiry; return their ids."""
        ...

    def announce_new(self, targets: Callable[[Escalation], list[str]], *, limit: int = 100,
                     now: float | None = None) -> int:
        """Queue posts for escalations not yet announced; how many were queued."""
        ...

    def announce_answers(self, updates: Callable[[str], bool], *, limit: int = 100,
                         now: float | None = None) -> int:
        """Queue updates of the posts of escalations answered since they were announced."""
        ...

    def queue_updates(self, escalation_id: str, updates: Callable[[str], bool], *,
                      now: float | None = None) -> int:
        """Queue updates of the posts of a pending escalation whose approvals changed."""
        ...

    def lease_next(self, scheme: str, *, lease: float,
                   now: float | None = None) -> Notice | None:
        """The next due notice of one channel, leased to the caller for ``lease`` s."""
        ...

    def pending_schemes(self, *, now: float | None = None) -> set[str]:
        """The channels with due queued notices."""
        ...

    def notice_done(self, notice_id: str, *, state: str = "sent",
                    ref: dict[str, Any] | None = None, error: str | None = None,
                    now: float | None = None) -> None: ...

    def notice_retry(self, notice_id: str, *, next_at: float,
                     error: str | None = None) -> None: ...

    def notices_for(self, escalation_id: str) -> list[Notice]: ...

    def count_notices(self) -> dict[str, int]: ...

    def use_once(self, digest: str, expires_at: float, now: float | None = None) -> bool:
        """Record a single use; False if ``digest`` was used before (a replay)."""
        ...

    # -- the e-mail channel's answer links (``links.py``) --------------------------------
    def add_answer_link(self, link: AnswerLink) -> None: ...

    def answer_link(self, digest: str) -> AnswerLink | None: ...

    def use_answer_link(self, digest: str, now: float | None = None) -> bool:
        """Mark a link used; False if it was before (or was withdrawn)."""
        ...

    def withdraw_answer_links(self, key_id: str, now: float | None = None) -> None: ...

    # -- policy versions ----------------------------------------------------------------
    def latest_policy(self) -> tuple[int, str] | None:
        """(version, YAML source) of the newest stored policy, or None."""
        ...

    def latest_version(self) -> int:
        """The newest version's number, 0 if none (polled by every server replica)."""
        ...

    def save_policy(self, source: str, *, by: str) -> int:
        """Store a validated policy as the next version; return its number."""
        ...

    def policy_versions(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest versions: version, created_at, created_by, digest."""
        ...

    def policy_version(self, version: int) -> dict[str, Any] | None:
        """One version with its ``source``, or None."""
        ...

    # -- dashboard sessions ended by logout -----------------------------------------------
    def end_session(self, digest: str, expires_at: float) -> None:
        """Refuse the session whose cookie hashes to ``digest`` until ``expires_at``."""
        ...

    def session_ended(self, digest: str) -> bool: ...

    # -- lifecycle ----------------------------------------------------------------------
    def unwritable(self) -> str | None:
        """Why decisions cannot be written now (None: they can), without writing."""
        ...

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    def close(self) -> None: ...
