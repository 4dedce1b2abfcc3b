"""The store interface (``StoreBackend``) and change feeds: the decision service runs on a
backend written from the interface alone, and each SQL dialect's feed wakes a waiter when
another connection answers."""

from __future__ import annotations

import asyncio
import fnmatch
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from staso.approvers import Approver, answer_values
from staso.decision_filters import DecisionFilter, DecisionPage, decode_cursor, encode_cursor
from staso.errors import EscalationConflict, EscalationNotFound
from staso.grants import Grant
from staso.models import Escalation, GuardRequest
from staso.plugins import make_plugin_manager
from staso.policy.discovery import load_any_policy
from staso.server.guesses import GuessLimiter, KeyCache
from staso.service import DecisionService
from staso.store import Store, StoreBackend
from staso.store.changes import PostgresChanges, SqliteChanges
from staso.store.keys import ApiKey, create_key, hash_key
from staso.store.links import AnswerLink
from staso.store.notices import Notice
from staso.store.policy_history import policy_digest
from staso.waiting import ChangeFeed


class MemoryStore:
    """A whole backend in one class, held in memory: what a new store implements."""

    def __init__(self) -> None:
        self.escalations: dict[str, Escalation] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, tuple[ApiKey, str, float | None]] = {}
        self.policies: list[str] = []
        self.policy_meta: list[dict[str, Any]] = []
        self.ended: dict[str, float] = {}
        self.announced: dict[str, int] = {}  # escalation id -> 0 new, 1 posted, 2 answered
        self.notices: dict[str, Notice] = {}
        self.used: set[str] = set()
        self.links: dict[str, AnswerLink] = {}
        self.grants: dict[str, Grant] = {}
        self.lock = threading.Lock()

    def get_escalation(self, escalation_id: str) -> Escalation:
        esc = self.escalations.get(escalation_id)
        if esc is None:
            raise EscalationNotFound(escalation_id)
        return replace(esc, status=esc.effective_status())

    def list_escalations(self, *, status: str | None = None, agent: str | None = None,
                         tool: str | None = None, rule: str | None = None,
                         limit: int = 100) -> list[Escalation]:
        found = [self.get_escalation(i) for i in self.escalations]
        return [e for e in found if status in (None, e.status)][:limit]

    def count_escalations(self, status: str) -> int:
        return len(self.list_escalations(status=status))

    def open_escalation(self, *, fingerprint: str, decision_id: str, values: dict[str, Any],
                        expires_at: float, claim_window: float, extend: bool = False,
                        now: float | None = None) -> tuple[Escalation, str]:
        now = now or time.time()
        with self.lock:
            for esc in self.escalations.values():
                if esc.fingerprint != fingerprint:
                    continue
                if esc.status in ("approved", "denied") and esc.consumed_at is None:
                    self.escalations[esc.id] = replace(esc, consumed_at=now)
                    return self.escalations[esc.id], "claimed"
                if esc.effective_status(now) == "pending":
                    return esc, "pending"
            esc = Escalation(id=f"esc_{len(self.escalations)}", status="pending",
                             fingerprint=fingerprint, decision_id=decision_id, created_at=now,
                             expires_at=expires_at, **values)
            self.escalations[esc.id] = esc
            return esc, "created"

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None = None,
                modified_input: dict[str, Any] | None = None, via: str | None = None,
                approver: Approver | None = None, grant: dict[str, Any] | None = None,
                now: float | None = None) -> Escalation:
        now = now or time.time()
        with self.lock:
            esc = self.get_escalation(escalation_id)
            if esc.status != "pending":
                raise EscalationConflict(f"already {esc.status}", status=esc.status)
            values = answer_values(esc, approver or Approver(by), status=status, by=by,
                                   comment=comment, modified_input=modified_input, via=via,
                                   granting=grant is not None, now=now)
            self.escalations[esc.id] = replace(esc, **values)
            if grant is not None and values.get("status") == "approved":
                scope = {k: v for k, v in grant.items() if k != "ttl"}
                made = Grant(id=f"grant_{len(self.grants)}", created_at=now,
                             created_by=(approver or Approver(by)).name, created_via=via,
                             expires_at=now + grant["ttl"], **scope)
                self.grants[made.id] = made
            return self.escalations[esc.id]

    def last_answer(self, fingerprint: str, since: float) -> Escalation | None:
        answered = [e for e in self.escalations.values() if e.fingerprint == fingerprint
                    and e.status in ("approved", "denied") and (e.resolved_at or 0) >= since]
        return max(answered, key=lambda e: e.resolved_at or 0, default=None)

    def expire(self, escalation_id: str, now: float | None = None) -> tuple[Escalation, bool]:
        esc = self.get_escalation(escalation_id)
        changed = self.escalations[escalation_id].status != esc.status
        self.escalations[escalation_id] = esc
        return esc, changed

    def claim(self, escalation_id: str, decision_id: str, now: float | None = None) -> bool:
        with self.lock:
            esc = self.get_escalation(escalation_id)
            if esc.consumed_at is not None or esc.status not in ("approved", "denied"):
                return False
            self.escalations[escalation_id] = replace(esc, consumed_at=now or time.time())
            return True

    def changes(self) -> ChangeFeed:
        return ChangeFeed()  # one process: in-process changes are all there are

    def write_decisions(self, rows: Iterable[dict[str, Any]],
                        updates: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        with self.lock:
            for row in rows:
                self.decisions.setdefault(row["id"], dict(row))
            for decision_id, fields in updates:
                self.decisions[decision_id].update(fields)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        return self.decisions.get(decision_id)

    def list_decisions(self, *, limit: int = 100, tool: str | None = None
                       ) -> list[dict[str, Any]]:
        rows = [r for r in self.decisions.values() if tool in (None, r["tool_name"])]
        return sorted(rows, key=lambda r: -r["created_at"])[:limit]

    def decision_agents(self, decision_ids: list[str]) -> dict[str, str]:
        return {i: self.decisions[i]["agent_name"] for i in decision_ids if i in self.decisions}

    def query_decisions(self, filters: DecisionFilter) -> DecisionPage:
        def keep(row: dict[str, Any]) -> bool:
            names = ((filters.agent, row.get("agent_name")), (filters.tool, row.get("tool_name")),
                     (filters.rule, row.get("rule_name")))
            texts = (row["id"], row.get("tool_name"), row.get("agent_name"),
                     row.get("rule_name"), row.get("reason"), row.get("escalation_id"))
            return (all(fnmatch.fnmatchcase((value or "").lower(), want.lower())
                        for want, value in names if want is not None)
                    and (not filters.actions or row.get("action") in filters.actions)
                    and (filters.q is None or any(filters.q.lower() in (t or "").lower()
                                                  for t in texts))
                    and (filters.since is None or row["created_at"] >= filters.since)
                    and (filters.until is None or row["created_at"] <= filters.until))

        rows = sorted((r for r in self.decisions.values() if keep(r)),
                      key=lambda r: (r["created_at"], r["id"]), reverse=True)  # newest first
        if filters.cursor is not None:
            at, last = decode_cursor(filters.cursor)
            rows = [r for r in rows if (r["created_at"], r["id"]) < (at, last)]
        page = rows[:filters.limit]
        more = len(rows) > filters.limit
        return DecisionPage(items=page, next_cursor=encode_cursor(
            page[-1]["created_at"], page[-1]["id"]) if more else None)

    def decision_overview(self, since: float, until: float,
                          now: float | None = None) -> dict[str, Any]:
        rows = [r for r in self.decisions.values() if since <= r["created_at"] <= until]
        totals = Counter(r.get("action") for r in rows if r.get("action"))
        rules = Counter(r.get("rule_name") for r in rows if r.get("rule_name"))
        return {"since": since, "until": until, "totals": dict(totals),
                "top_rules": [{"rule": name, "count": n} for name, n in rules.most_common(10)],
                "pending": self.count_escalations("pending")}

    def add_key(self, record: ApiKey, key_hash: str) -> None:
        self.keys[record.id] = (record, key_hash, None)

    def key_by_hash(self, digest: str) -> tuple[ApiKey, str] | None:
        return self.live_keys().get(digest)

    def key_by_id(self, key_id: str) -> tuple[ApiKey, str] | None:
        return next((k for k in self.live_keys().values() if k[0].id == key_id), None)

    def live_keys(self) -> dict[str, tuple[ApiKey, str]]:
        return {h: (r, h) for r, h, revoked in self.keys.values() if revoked is None}

    def list_keys(self) -> list[tuple[ApiKey, float | None]]:
        return [(r, revoked) for r, _, revoked in self.keys.values()]

    def revoke_key(self, key_id: str) -> bool:
        found = self.keys.get(key_id)
        if found is None or found[2] is not None:
            return False
        self.keys[key_id] = (found[0], found[1], time.time())
        return True

    def bind_key(self, key_id: str, agents: str) -> bool:
        found = self.keys.get(key_id)
        if found is None or found[2] is not None or found[0].role != "agent":
            return False
        self.keys[key_id] = (replace(found[0], agents=agents), found[1], None)
        return True

    def link_key(self, key_id: str, *, slack_user: str | None = None,
                 email: str | None = None) -> bool:
        found = self.keys.get(key_id)
        if found is None or found[2] is not None or found[0].role == "agent":
            return False
        record = replace(found[0], slack_user=slack_user or found[0].slack_user,
                         email=email or found[0].email)
        self.keys[key_id] = (record, found[1], None)
        return True

    def key_for_person(self, *, slack_user: str | None = None, email: str | None = None
                       ) -> tuple[ApiKey, str] | None:
        return next(((r, h) for r, h in self.live_keys().values() if r.role != "agent" and (
            (slack_user and r.slack_user == slack_user) or (email and r.email == email))),
            None)

    # -- the approval channels' queue ---------------------------------------------------
    def set_groups(self, key_id: str, groups: Iterable[str]) -> bool:
        record, digest, revoked = self.keys[key_id]
        self.keys[key_id] = (replace(record, groups=tuple(groups)), digest, revoked)
        return revoked is None

    def approver_named(self, name: str) -> tuple[str, ...]:
        return tuple(g for k, _, revoked in self.keys.values()
                     if k.name == name and revoked is None for g in k.groups)

    def live_grants(self, agent_name: str, tool_name: str, rule_name: str,
                    now: float | None = None) -> list[Grant]:
        now = now or time.time()
        return [g for g in self.grants.values() if g.state(now) == "live" and
                (g.agent_name, g.tool_name, g.rule_name) == (agent_name, tool_name, rule_name)]

    def use_grant(self, grant_id: str, now: float | None = None) -> Grant | None:
        now = now or time.time()
        with self.lock:
            grant = self.grants.get(grant_id)
            if grant is None or grant.state(now) != "live":
                return None
            self.grants[grant_id] = replace(grant, uses=grant.uses + 1, last_used_at=now)
            return grant

    def get_grant(self, grant_id: str) -> Grant | None:
        return self.grants.get(grant_id)

    def list_grants(self, *, live_only: bool = False, limit: int = 200,
                    now: float | None = None) -> list[Grant]:
        now = now or time.time()
        found = sorted(self.grants.values(), key=lambda g: -g.created_at)
        return [g for g in found if not live_only or g.state(now) == "live"][:limit]

    def revoke_grant(self, grant_id: str, *, by: str, now: float | None = None) -> bool:
        grant = self.grants.get(grant_id)
        if grant is None or grant.revoked_at is not None:
            return False
        self.grants[grant_id] = replace(grant, revoked_at=now or time.time(), revoked_by=by)
        return True

    def expire_due(self, now: float | None = None) -> list[str]:
        return [i for i in list(self.escalations) if self.expire(i, now)[1]]

    def announce_new(self, targets: Any, *, limit: int = 100,
                     now: float | None = None) -> int:
        queued = 0
        for esc in list(self.escalations.values()):
            if self.announced.setdefault(esc.id, 0) == 0:
                self.announced[esc.id] = 1 if esc.status == "pending" else 2
                for target in targets(esc):
                    self._queue(esc.id, target, "post", now)
                    queued += 1
        return queued

    def announce_answers(self, updates: Any, *, limit: int = 100,
                         now: float | None = None) -> int:
        queued = 0
        for esc in list(self.escalations.values()):
            if self.announced.get(esc.id) == 1 and esc.status != "pending":
                self.announced[esc.id] = 2
                for post in self.notices_for(esc.id):
                    if post.kind == "post" and updates(post.scheme):
                        self._queue(esc.id, post.target, "update", now)
                        queued += 1
        return queued

    def queue_updates(self, escalation_id: str, updates: Any, *,
                      now: float | None = None) -> int:
        esc = self.escalations.get(escalation_id)
        if esc is None or esc.status != "pending" or self.announced.get(esc.id) != 1:
            return 0
        posts = [n.target for n in self.notices_for(esc.id)
                 if n.kind == "post" and updates(n.scheme)]
        for target in posts:
            self._queue(esc.id, target, "update", now)
        return len(posts)

    def _queue(self, escalation_id: str, target: str, kind: str, now: float | None) -> None:
        notice = Notice(id=f"ntc_{len(self.notices)}", escalation_id=escalation_id,
                        target=target, kind=kind, state="queued", next_at=now or time.time(),
                        created_at=time.time())
        self.notices[notice.id] = notice

    def lease_next(self, scheme: str, *, lease: float,
                   now: float | None = None) -> Notice | None:
        with self.lock:  # (one process: a lease is the state leaving "queued")
            for notice in self.notices.values():
                if notice.state == "queued" and notice.scheme == scheme and \
                        notice.next_at <= (now or time.time()):
                    self.notices[notice.id] = replace(notice, state="leased")
                    return notice
        return None

    def pending_schemes(self, *, now: float | None = None) -> set[str]:
        return {n.scheme for n in self.notices.values() if n.state == "queued"}

    def notice_done(self, notice_id: str, *, state: str = "sent",
                    ref: dict[str, Any] | None = None, error: str | None = None,
                    now: float | None = None) -> None:
        self.notices[notice_id] = replace(self.notices[notice_id], state=state, ref=ref,
                                          last_error=error, sent_at=now or time.time())

    def notice_retry(self, notice_id: str, *, next_at: float,
                     error: str | None = None) -> None:
        notice = self.notices[notice_id]
        self.notices[notice_id] = replace(notice, state="queued", next_at=next_at,
                                          attempts=notice.attempts + (error is not None),
                                          last_error=error or notice.last_error)

    def notices_for(self, escalation_id: str) -> list[Notice]:
        return [n for n in self.notices.values() if n.escalation_id == escalation_id]

    def count_notices(self) -> dict[str, int]:
        return dict(Counter(n.state for n in self.notices.values()))

    def use_once(self, digest: str, expires_at: float, now: float | None = None) -> bool:
        with self.lock:
            fresh = digest not in self.used
            self.used.add(digest)
            return fresh

    # -- the e-mail channel's answer links ----------------------------------------------
    def add_answer_link(self, link: AnswerLink) -> None:
        self.links[link.id] = link

    def answer_link(self, digest: str) -> AnswerLink | None:
        return self.links.get(digest)

    def use_answer_link(self, digest: str, now: float | None = None) -> bool:
        with self.lock:
            link = self.links.get(digest)
            if link is None or link.used_at is not None:
                return False
            self.links[digest] = replace(link, used_at=now or time.time())
            return True

    def withdraw_answer_links(self, key_id: str, now: float | None = None) -> None:
        for digest, link in list(self.links.items()):
            if link.key_id == key_id and link.used_at is None:
                self.links[digest] = replace(link, used_at=now or time.time())

    def latest_policy(self) -> tuple[int, str] | None:
        return (len(self.policies), self.policies[-1]) if self.policies else None

    def latest_version(self) -> int:
        return len(self.policies)

    def save_policy(self, source: str, *, by: str) -> int:
        self.policies.append(source)
        self.policy_meta.append({"created_at": time.time(), "created_by": by})
        return len(self.policies)

    def policy_versions(self, limit: int = 200) -> list[dict[str, Any]]:
        return [{"version": n, **self.policy_meta[n - 1], "digest": policy_digest(source)}
                for n, source in reversed(list(enumerate(self.policies, 1)))][:limit]

    def policy_version(self, version: int) -> dict[str, Any] | None:
        if not 1 <= version <= len(self.policies):
            return None
        return {"version": version, **self.policy_meta[version - 1],
                "source": self.policies[version - 1]}

    def end_session(self, digest: str, expires_at: float) -> None:
        self.ended[digest] = expires_at

    def session_ended(self, digest: str) -> bool:
        return digest in self.ended

    def ping(self) -> None:
        pass

    def unwritable(self) -> str | None:
        return None

    def close(self) -> None:
        pass


def test_the_memory_backend_has_every_method_of_the_interface() -> None:
    wanted = {n for n in vars(StoreBackend) if not n.startswith("_")}
    assert {"open_escalation", "write_decisions", "live_keys", "save_policy"} <= wanted
    assert sorted(n for n in wanted if not callable(getattr(MemoryStore, n, None))) == []


def test_the_memory_backend_reads_the_decision_log_as_the_sql_store_does(tmp_path: Any
                                                                       ) -> None:
    """What a new store implements for the decision log: the same rows for the same
    filters, page by page, and the same policy versions."""
    rows = [{"id": f"dec_{i:03d}", "created_at": 1000.0 + i // 3, "agent_name": f"agent-{i % 4}",
             "tool_name": ("process_refund", "run_sql", "send_email")[i % 3],
             "action": ("allow", "block", "escalate", "modify")[i % 4],
             "rule_name": None if i % 4 == 0 else f"rule_{i % 5}", "reason": f"reason {i}",
             "environment": "", "tool_input": {"n": i}, "context": {}} for i in range(40)]
    sql = Store(f"sqlite:///{tmp_path / 's.db'}")
    memory = MemoryStore()
    try:
        for store in (sql, memory):
            store.write_decisions([dict(r) for r in rows])
            store.save_policy("version: 1\nrules: []\n", by="alice")
        for given in ({}, {"tool": "RUN_*"}, {"action": "block,escalate"}, {"q": "REASON 1"},
                      {"agent": "agent-2", "since": 1003, "until": 1010}):
            pages = []
            for store in (sql, memory):
                ids, cursor = [], None
                while True:
                    page = store.query_decisions(DecisionFilter.parse(**given, limit=4,
                                                                      cursor=cursor))
                    ids += [r["id"] for r in page.items]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                pages.append(ids)
            assert pages[0] == pages[1] and pages[0], (given, pages)
        assert [(v["version"], v["created_by"], v["digest"]) for v in sql.policy_versions()] \
            == [(v["version"], v["created_by"], v["digest"]) for v in memory.policy_versions()]
        assert (sql.policy_version(1) or {})["source"] == (memory.policy_version(1) or {})["source"]
        assert memory.policy_version(2) is None and sql.policy_version(2) is None
    finally:
        sql.close()


def test_keys_are_made_once_and_looked_up_by_hash_on_any_backend() -> None:
    store = MemoryStore()
    record, key = create_key(store, role="agent", name="refund-agent")
    assert key not in repr(store.keys)  # only the hash is handed to the backend
    cache = KeyCache(store, ttl=60.0, guesses=GuessLimiter(limit=5, window=60.0))
    assert asyncio.run(cache.lookup(key)) == (record, hash_key(key))
    assert asyncio.run(cache.lookup(key + "x")) is None
    assert store.revoke_key(record.id) and not store.revoke_key(record.id)
    cache.expire()
    assert asyncio.run(cache.lookup(key)) is None


def test_the_service_runs_on_a_backend_written_from_the_interface() -> None:
    store: StoreBackend = MemoryStore()
    pm = make_plugin_manager(entry_points=False)
    service = DecisionService(store, load_any_policy(None, pm), pm)
    try:
        request = GuardRequest("process_refund", {"amount": 5000}, "dec_mem_1",
                               agent_name="refund-agent")
        first = service.decide(request)
        assert (first.action, first.escalation_status) == ("escalate", "pending")
        service.finish(request, first)

        def approve() -> None:
            time.sleep(0.1)
            service.resolve(first.escalation_id, status="approved", by="alice")

        threading.Thread(target=approve).start()
        started = time.monotonic()
        answered = service.wait_answer(first.escalation_id, time.time() + 5, poll_interval=3.0)
        assert answered.status == "approved"
        assert time.monotonic() - started < 1.0  # woken by the feed, not the 3 s poll
        retry = service.decide(replace(request, decision_id="dec_mem_2"))
        assert (retry.action, retry.escalation_id) == ("allow", first.escalation_id)
        service.log.flush()
        assert (store.get_decision("dec_mem_1") or {}).get("action") == "escalate"
    finally:
        service.close()


def test_each_dialect_feeds_other_connections_answers(database_url: str) -> None:
    """Two stores on one database stand for two processes: an answer given through one
    wakes a waiter on the other's feed (SQLite: data_version; PostgreSQL: NOTIFY)."""
    waiter_side, answer_side = Store(database_url), Store(database_url)
    feed = waiter_side.changes()
    assert isinstance(feed, SqliteChanges if database_url.startswith("sqlite")
                      else PostgresChanges)
    try:
        esc, how = answer_side.open_escalation(
            fingerprint="f", decision_id="dec_1", expires_at=time.time() + 60,
            claim_window=60, values={"tool_name": "t", "tool_input": {}, "context": {}})
        assert how == "created"
        threading.Timer(0.3, lambda: answer_side.resolve(esc.id, status="denied",
                                                         by="bob")).start()
        started = time.monotonic()
        while True:  # as DecisionService.wait does: a wake-up is a reason to look again
            token = feed.token(esc.id)
            if waiter_side.get_escalation(esc.id).status != "pending":
                break
            assert time.monotonic() - started < 2.0, "the answer was not seen"
            feed.wait_change(esc.id, token, timeout=5.0)
        assert time.monotonic() - started < 2.0  # far under the 5 s a missed wake-up costs
        assert waiter_side.get_escalation(esc.id).status == "denied"
    finally:
        feed.close()
        waiter_side.close()
        answer_side.close()
