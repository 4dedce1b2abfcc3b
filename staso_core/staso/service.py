"""The decision service: policy, plugins, escalations and the decision log together.

Embedded mode calls it in-process; ``staso serve`` calls the same code behind HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pluggy

from .approvers import AnswerRefused, Approver, same_person
from .dead_letters import DeadLetters
from .decision_log import DecisionLog
from .errors import (
    DecisionIdReused,
    EscalationUnavailable,
    InvalidToolInput,
    ReusedIdNoFallback,
)
from .grants import (
    GrantConditions,
    allowed_by,
    covers,
    escalating_rules,
    requested_by,
    scope_from,
)
from .hook_runner import HookRunner
from .jsonutil import check_json, fingerprint
from .masking import Masker
from .models import (
    STRICTNESS,
    Escalation,
    GuardRequest,
    GuardResult,
    RuleResult,
)
from .output_masking import mask_execution_fields
from .plugin_guard import GuardHooks
from .plugins import runs_foreign_code
from .policy import Engine, Policy
from .recent import RecentResults
from .resolution import result_from_escalation
from .result_templates import compact
from .store import StoreBackend, lock_waits_until

log = logging.getLogger("staso")


SWITCH_INTERVAL = 0.001  # seconds
Evaluator = Callable[[GuardRequest], GuardResult]
AsyncEvaluator = Callable[[GuardRequest], Awaitable[GuardResult]]


def shorten_gil_slices() -> None:
    """Let a thread waiting for the GIL (an event loop, a caller past its timeout) get it
    within 1 ms. A worker running Python hands the GIL back only every switch interval; the
    default 5 ms, paid at each wake-up while slow evaluations run, put other agents' answers
    near 50 ms on a server and made timed-out embedded calls return half a second late.
    1 ms costs a CPU-bound thread nothing measurable when no one else asks for the GIL."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))


# the policy in force: log masker, version, digest, and its engine (for results templates)
Stamp = tuple[Masker, int | None, str, Engine]


def _decision_record(request: GuardRequest, result: GuardResult, created_at: float,
                     stamp: Stamp) -> tuple[Any, ...]:
    """What the decision log's thread needs of a call, as one flat tuple. The queue holds
    records for up to a few milliseconds (the log's thread waits for the GIL), so Python's
    cyclic GC finds them alive and moves them to its oldest generation; every ~25k objects
    moved there cost a full collection (~45 ms on the report machine's heap). The request
    and result were ten tracked objects a record (two dataclasses, their ``__dict__``, three
    lists, two tuples); this is three (empty lists become the shared empty tuple). Measured
    with the 50-rule benchmark: full collections 3 -> 2 per 20,000 calls, CPU per decision
    ~50 -> ~44 µs."""
    return (request.decision_id, created_at, request.agent_name, request.environment,
            request.tool_name, request.tool_input, request.context, result.action,
            result.reason, result.rule_name, result.severity, result.results,
            tuple(result.rules_triggered), result.modified_input, tuple(result.modifications),
            result.escalation_id, result.escalation_status, result.latency_ms, result.grant_id,
            result.answers, stamp)


def _decision_row(item: tuple[Any, ...]) -> dict[str, Any]:
    (decision_id, created_at, agent_name, environment, tool_name, tool_input, context, action,
     reason, rule_name, severity, results, rules_triggered, modified_input, modifications,
     escalation_id, escalation_status, latency_ms, grant_id, answers,
     (masker, version, digest, engine)) = item
    return {
        "id": decision_id, "created_at": created_at, "agent_name": agent_name,
        "environment": environment, "tool_name": tool_name,
        "tool_input": masker.mask(tool_input), "context": masker.mask(context),
        "action": action, "reason": reason, "rule_name": rule_name,
        "severity": severity,
        "results": compact(results, engine.template_for(tool_name)),
        "rules_triggered": list(rules_triggered),
        "modified_input": masker.mask(modified_input),
        "modifications": list(modifications), "escalation_id": escalation_id,
        "escalation_status": escalation_status, "latency_ms": latency_ms,
        "policy_version": version, "policy_digest": digest, "grant_id": grant_id,
        "answers": answers,
    }


def _unguarded_row(item: tuple[GuardRequest, dict[str, Any], float, Stamp]) -> dict[str, Any]:
    request, fields, created_at, (masker, _, _, _) = item
    return {"id": request.decision_id, "created_at": created_at,
            "agent_name": request.agent_name, "environment": request.environment,
            "tool_name": request.tool_name, "tool_input": masker.mask(request.tool_input),
            "context": masker.mask(request.context), "action": None, **fields}


_NO_BLAME = contextlib.nullcontext()


def _owner(request: GuardRequest, digest: str = "") -> tuple[str, str, str]:
    return request.agent_name, request.tool_name, digest


def _deadline(request: GuardRequest) -> float | None:
    """When the call's decision must be ready (``time.monotonic()``), if it has a timeout."""
    return None if request.timeout is None else time.monotonic() + request.timeout


class DecisionService:
    def __init__(self, store: StoreBackend, policy: Policy, pm: pluggy.PluginManager, *,
                 dead_letter_file: Path | None = None, policy_version: int | None = None
                 ) -> None:
        self.store = store
        self.pm = pm
        self.plugins = GuardHooks(pm)
        self.grant_conditions = GrantConditions(self.plugins.cel_functions())
        self.set_policy(policy, policy_version)
        self.log = DecisionLog(store, dead_letters=DeadLetters(dead_letter_file))
        self.notifier = store.changes()
        self._recent = RecentResults()
        hooks = pm.hook
        # only call hooks someone implements: an empty hook call still costs microseconds
        self._after = hooks.staso_after_guard if hooks.staso_after_guard.get_hookimpls() else None
        self.notify = HookRunner()  # notification hooks: never on the guard's path
        self.foreign_code = runs_foreign_code(pm)

    def may_evaluate_inline(self, size: int, limit: int) -> bool:
        """Whether a call of ``size`` bytes of JSON is cheap enough to evaluate on a thread
        that must stay responsive: staso's own detectors are linear in their input, so a
        small input bounds their time; foreign code has no such bound."""
        return size <= limit and not self.foreign_code

    # -- deciding -----------------------------------------------------------------------
    def evaluate(self, request: GuardRequest, policy: Evaluator | None = None) -> GuardResult:
        """The policy's (and plugins') decision, before any escalation is stored.

        ``policy`` evaluates the policy elsewhere (a server's worker process); the plugin
        hooks still run here, where plugins keep their state."""
        plugins = self.plugins
        failure = plugins.run_before(request) if plugins.before else None
        if policy is not None:
            result = policy(request)
        else:  # (a plugin's CEL function that hangs is blamed on it; staso's own, nothing)
            with plugins.deciding(request.decision_id) if plugins.blames_cel else _NO_BLAME:
                result = self.engine.evaluate(request.tool_name, request.tool_input,
                                              request.context, request.decision_id)
        verdict = failure or (plugins.verdict(request) if plugins.evaluate else None)
        if verdict is not None:
            result = self._merge(result, verdict)
        return result

    @staticmethod
    def _merge(result: GuardResult, verdict: RuleResult) -> GuardResult:
        """Add a plugin's (checked) verdict to a fresh result; it wins only if stricter."""
        result.results.append(verdict)
        if verdict.passed:
            return result
        result.rules_triggered.append(verdict.rule_name)
        if verdict.mode == "audit" or STRICTNESS[verdict.action] <= STRICTNESS[result.action]:
            return result
        return replace(result, action=verdict.action, reason=verdict.reason,
                       rule_name=verdict.rule_name, severity=verdict.severity,
                       modified_input=None if verdict.action == "block" else result.modified_input,
                       escalation_status="pending" if verdict.action == "escalate" else None)

    def recent(self, decision_id: str, request: GuardRequest | None = None,
               digest: str = "") -> GuardResult | None:
        """The answer given to this decision id; with ``request``, only if it answered the
        same agent's call of the same tool (and, with ``digest``, the same request)."""
        owner = None if request is None else _owner(request, digest)
        return self._recent.get(decision_id, owner)

    def remember(self, request: GuardRequest, result: GuardResult, digest: str = "") -> None:
        """A retry of this call gets ``result`` again, without a second evaluation.
        ``digest``: a hash of the request as sent, where callers choose decision ids."""
        self._recent.put(request.decision_id, result, _owner(request, digest))

    def escalate(self, request: GuardRequest, result: GuardResult,
                 deadline: float | None = None) -> GuardResult:
        """Store (or join, or use up) the escalation for an escalate decision. Durable on
        return. ``deadline`` (``time.monotonic()``): how long a locked database is waited
        for, so a call with a timeout fails closed in time."""
        try:
            with lock_waits_until(deadline):
                return self._escalate(request, result)
        except DecisionIdReused as exc:  # the caller's mistake (409), and never an allow
            raise ReusedIdNoFallback(str(exc)) from exc
        except Exception as exc:
            raise EscalationUnavailable(f"the escalation could not be stored: {exc}") from exc

    def _escalate(self, request: GuardRequest, result: GuardResult) -> GuardResult:
        now = time.time()
        ttl = self.policy.escalation_ttl
        expires_at = now + (request.escalation_timeout if request.wait else ttl)
        mask = self.policy.log_masker.mask
        terms = self._terms(result)
        esc, how = self.store.open_escalation(
            fingerprint=self._fingerprint(request, terms),
            decision_id=request.decision_id, expires_at=expires_at, claim_window=ttl, now=now,
            values={"agent_name": request.agent_name, "environment": request.environment,
                    "tool_name": request.tool_name, "tool_input": mask(request.tool_input),
                    "context": mask(request.context), "rule_name": result.rule_name,
                    "reason": result.reason, "severity": result.severity,
                    "proposed_input": mask(result.modified_input),
                    "requested_by": requested_by(request.context),
                    "policy_version": self.policy_version, "policy_digest": self.policy.digest,
                    "rule_digest": self.policy.rule_digest(result.rule_name),
                    **terms}, extend=request.wait)
        if how == "created":
            self.notifier.changed(esc.id)
            self.notify.call(self.pm.hook.staso_escalation_created, escalation=esc)
        if how == "claimed":
            return result_from_escalation(esc, result, request.tool_input)
        return replace(result, escalation_id=esc.id, escalation_status=esc.status,
                       modified_input=None)

    def finish(self, request: GuardRequest, result: GuardResult, *, logged: bool = False,
               urgent: bool = False, remember: bool = True) -> int:
        """Remember, log and announce a decision; return its log sequence number. Without
        ``remember`` a retry of the call is not answered from memory until the caller
        calls ``remember`` (the server: once the record is written)."""
        if remember:
            self.remember(request, result)
        if logged:
            seq = self.log.update(request.decision_id, {
                **self._final_fields(result), "latency_ms": result.latency_ms}, urgent=urgent)
        else:
            seq = self.log.add(_decision_row, _decision_record(request, result, time.time(),
                                                               self._stamp),
                               urgent=urgent)
        if self._after is not None:
            self.notify.call(self._after, request=request, result=result)
        return seq

    def decide(self, request: GuardRequest, evaluate: Evaluator | None = None, *,
               fresh: bool = False) -> GuardResult:
        """One call's first answer, with its escalation stored; the same decision id gets
        the same answer. ``evaluate`` runs the policy where the caller wants it (a worker
        thread with a deadline) instead of here. ``fresh``: the caller made the decision id
        for this call (an embedded client), so no earlier answer can exist to look up.
        Logged later, by ``finish``, once the caller knows the call's latency."""
        deadline = _deadline(request)
        if not fresh:
            previous = self.recent(request.decision_id, request)
            if previous is not None:
                return previous
        result = (evaluate or self.evaluate)(request)
        if result.action == "escalate":
            result = self._escalate_unless_granted(request, result, deadline)
        return result

    async def adecide(self, request: GuardRequest,
                      evaluate: AsyncEvaluator | None = None) -> GuardResult:
        """``decide`` for asyncio: ``evaluate`` keeps a slow evaluation off the event loop
        (without it the policy runs inline); the escalation is stored in a worker thread."""
        deadline = _deadline(request)
        previous = self.recent(request.decision_id, request)
        if previous is not None:
            return previous
        result = self.evaluate(request) if evaluate is None else await evaluate(request)
        if result.action == "escalate":
            result = await asyncio.to_thread(self._escalate_unless_granted, request, result,
                                             deadline)
        return result

    def _escalate_unless_granted(self, request: GuardRequest, result: GuardResult,
                                 deadline: float | None) -> GuardResult:
        """An escalating call: allowed by a standing approval that covers it, or stored
        for a person (``decide`` and ``adecide``, the latter on a worker thread)."""
        return self.granted(request, result) or self.escalate(request, result, deadline)

    def granted(self, request: GuardRequest, result: GuardResult) -> GuardResult | None:
        """The allow a live standing approval gives this escalating call, its use counted;
        None: no grant covers it (a person decides). A grant holds only while its rule
        says what it said when the grant was given, and while its maker may still approve
        the rule's escalations; a person's own answer to this very call (a denial, or an
        approval not yet used, which may carry an edit) comes first. A grant that cannot be
        read (the database down) grants nothing: the escalation path says what follows."""
        policy = self.policy
        rule = policy.rule_named(result.rule_name)
        if rule is None or rule.approvals_required > 1:
            return None  # (a rule that now needs a quorum takes no grant made before)
        try:
            found = self.store.live_grants(request.agent_name, request.tool_name, rule.name)
            if not found:
                return None
            now = time.time()
            prior = self.store.last_answer(self._fingerprint(request, self._terms(result)),
                                           now - policy.escalation_ttl)
            if prior is not None and (prior.status == "denied" or prior.consumed_at is None):
                return None
            digest, asker = policy.rule_digest(rule.name), requested_by(request.context)
            for grant in found:
                if grant.rule_digest != digest or (
                        rule.forbid_self_approval and asker is not None
                        and same_person(asker, grant.created_by)):
                    continue
                if rule.approvers is not None and not self._still_approves(
                        grant.created_by, rule.approvers):
                    continue
                if covers(grant, request, result, self.grant_conditions):
                    used = self.store.use_grant(grant.id)
                    if used is not None:
                        return allowed_by(used, result)
        except Exception as exc:
            log.warning("staso: standing approvals could not be read (%s); the call goes "
                        "to a person", exc)
        return None

    def _still_approves(self, name: str, entries: tuple[str, ...]) -> bool:
        """Whether the person named ``name`` is still among a rule's approvers: by name,
        by a group of a live key of that name, or as the Slack user or address a live key
        of that name is linked to (a revoked key, a group left: their grants stop)."""
        if Approver(name, groups=self.store.approver_named(name)).is_listed(entries):
            return True
        for entry in entries:
            kind, _, value = entry.partition(":")
            if kind in ("slack", "email"):
                key = self.store.key_for_person(**{"slack_user" if kind == "slack"
                                                    else "email": value})
                if key is not None and key[0].name == name:
                    return True
        return False

    def _terms(self, result: GuardResult) -> dict[str, Any]:
        """Where an escalation of this call is announced and who must answer it: the
        strictest terms of every rule that escalated it (``Policy.escalation_terms``)."""
        return self.policy.escalation_terms(result.rule_name, *sorted(escalating_rules(result)))

    @staticmethod
    def _fingerprint(request: GuardRequest, terms: dict[str, Any]) -> str:
        """What makes two calls the same call: they share an escalation, and an answer to
        one lets the other through. Besides agent, tool and input: who asked (an approval
        of alice's request is not taken by bob's identical one, who may have given it),
        the environment, and who must answer (an answer given under lax terms is not
        taken by a call that needs stricter ones: another rule, another context, a new
        policy). Calls with none of these keep the fingerprint they always had."""
        scope = [requested_by(request.context), request.environment,
                 terms.get("approvers"), terms.get("approvals_required", 1),
                 terms.get("forbid_self_approval", False)]
        plain = scope == [None, "", None, 1, False]
        return fingerprint(request.agent_name, request.tool_name, request.tool_input,
                           None if plain else scope)

    # -- escalations --------------------------------------------------------------------
    def get_escalation(self, escalation_id: str) -> Escalation:
        return self.store.get_escalation(escalation_id)

    def list_escalations(self, **filters: Any) -> list[Escalation]:
        return self.store.list_escalations(**filters)

    def resolve(self, escalation_id: str, *, status: str, by: str, comment: str | None = None,
                modified_input: dict[str, Any] | None = None, via: str | None = None,
                approver: Approver | None = None, grant: Any = None) -> Escalation:
        """Approve or deny: the answer, or one approval toward a quorum (the escalation
        then stays pending). An edited input must be JSON (InvalidToolInput). ``approver``:
        who answers (a key's person; default: ``by``, with its namesake keys' groups), who
        must be allowed to (NotAnApprover). ``grant``: a standing approval's scope, given
        with an approval (AnswerRefused if it reaches beyond the escalation). ``via``:
        where the answer came from (api, dashboard, slack, email, cli)."""
        if modified_input is not None:
            if not isinstance(modified_input, dict):
                raise InvalidToolInput("the edited input must be a JSON object of tool "
                                       f"arguments, not {type(modified_input).__name__}")
            check_json(modified_input, "modified_input")
        if approver is None:
            approver = Approver(name=by, groups=self.store.approver_named(by))
        scope = None
        if grant is not None:
            if status != "approved":
                raise AnswerRefused("a standing approval is given with an approval, not a "
                                    "denial")
            scope = scope_from(grant, self.store.get_escalation(escalation_id),
                               self.plugins.cel_functions())
        esc = self.store.resolve(escalation_id, status=status, by=by, comment=comment,
                                 modified_input=modified_input, via=via, approver=approver,
                                 grant=scope)
        self.notifier.changed(esc.id)
        hook = self.pm.hook.staso_escalation_resolved if esc.status != "pending" else \
            self.pm.hook.staso_escalation_approval
        self.notify.call(hook, escalation=esc)
        return esc

    def wait_answer(self, escalation_id: str, deadline: float,
                    poll_interval: float) -> Escalation:
        """Block until the escalation is answered or ``deadline``; checks at least every
        ``poll_interval`` seconds and wakes early on any change."""
        while True:
            token = self.notifier.token(escalation_id)
            esc = self.store.get_escalation(escalation_id)
            remaining = deadline - time.time()
            if esc.status != "pending" or remaining <= 0:
                return esc
            self.notifier.wait_change(escalation_id, token, min(poll_interval, remaining))

    async def await_answer(self, escalation_id: str, deadline: float,
                           poll_interval: float) -> Escalation:
        """``wait_answer`` for asyncio: reads run in a worker thread, the loop stays free."""
        while True:
            token = self.notifier.token(escalation_id)
            esc = await asyncio.to_thread(self.store.get_escalation, escalation_id)
            remaining = deadline - time.time()
            if esc.status != "pending" or remaining <= 0:
                return esc
            del esc  # read again once woken: not kept per waiter meanwhile (~2.5 KB each)
            await self.notifier.await_change(escalation_id, token, min(poll_interval, remaining))

    def expire(self, escalation_id: str) -> Escalation:
        esc, changed = self.store.expire(escalation_id)
        if changed:  # announce a timeout once, however often it is read afterwards
            self.notify.call(self.pm.hook.staso_escalation_resolved, escalation=esc)
        return esc

    def claim(self, answered: Escalation, decision_id: str, *, urgent: bool = False) -> bool:
        """Use up an answered escalation (as read by the caller: an answer never changes)
        for one waiting call; its decision row then records the person's answer. In every
        mode: the server's claim route calls this too, ``urgent`` as it answers only once
        the row is written."""
        if answered.status not in ("approved", "denied"):
            return False
        claimed = self.store.claim(answered.id, decision_id)
        if claimed:
            self._settle(decision_id, answered, urgent)
        return claimed

    def give_up(self, escalation_id: str, decision_id: str, *, urgent: bool = False) -> None:
        """A waiting call's deadline passed: its decision row records the timeout it was
        told. (Only ever stricter than the row it replaces: an escalate becomes a block.)"""
        esc = self.store.get_escalation(escalation_id)
        self._settle(decision_id, replace(esc, status="timeout"), urgent)

    def _settle(self, decision_id: str, esc: Escalation, urgent: bool) -> None:
        base = self.recent(decision_id) or GuardResult(
            action="escalate", decision_id=decision_id, tool_name=esc.tool_name,
            rule_name=esc.rule_name, reason=esc.reason, severity=esc.severity)
        final = result_from_escalation(esc, base)
        self.log.update(decision_id, self._final_fields(final), urgent=urgent)

    def _final_fields(self, result: GuardResult) -> dict[str, Any]:
        """What a decision row says once a waited call has its answer."""
        return {"action": result.action, "reason": result.reason,
                "rule_name": result.rule_name,
                "modified_input": self.policy.log_masker.mask(result.modified_input),
                "modifications": result.modifications, "escalation_id": result.escalation_id,
                "escalation_status": result.escalation_status, "answers": result.answers}

    def record_execution(self, request: GuardRequest | None, decision_id: str,
                         fields: dict[str, Any], *, urgent: bool = False) -> int:
        """A tool's execution: on its guard decision, or (with ``request``) an unguarded call."""
        fields = mask_execution_fields(fields, self.policy.log_masker)  # secrets in output, error
        if request is not None:  # an unguarded call: the row is the execution record
            return self.log.add(_unguarded_row, (request, fields, time.time(), self._stamp),
                                urgent=urgent)
        return self.log.update(decision_id, fields, urgent=urgent)

    def set_policy(self, policy: Policy, version: int | None = None) -> None:
        """Swap the policy (``version``: its number on a server); calls already evaluating
        finish on the old one."""
        self.engine, self.policy = Engine(policy, self.plugins.cel_functions()), policy
        self.policy_version = version
        self._stamp: Stamp = (policy.log_masker, version, policy.digest, self.engine)

    def flush(self) -> None:
        """Write the decision log's queue and run the notification hooks queued so far."""
        self.log.flush()
        self.notify.drain()

    def close(self) -> None:
        self.notify.close()
        self.notifier.close()
        self.log.close()
        self.store.close()
