"""Plugins on the guard's path (``staso_before_guard``, ``staso_evaluate``), called one
implementation at a time so that a failure names its plugin.

A guard whose plugin broke must not let the call through: a plugin that raises, or answers
something that is not a verdict (an unknown action, a wrong type), makes the call block
with the plugin named, whatever ``fail_closed`` says. One that hangs past the caller's
timeout does the same (``errors.PluginTimeout``): the call knows which plugin it was
waiting for.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .models import ACTIONS, SEVERITIES, GuardRequest, RuleResult
from .plugins import BUILTIN_PLUGINS

if TYPE_CHECKING:
    import pluggy

_MODES = ("enforce", "audit")
_NAME_LIMIT = 200


def failed(plugin: str, what: str) -> RuleResult:
    """The verdict that stands in for a plugin that failed: block, naming it."""
    return RuleResult(rule_name=f"plugin:{plugin}", passed=False, action="block",
                      severity="high", reason=f"the plugin {plugin!r} {what}; the call is "
                                              "blocked rather than let through unjudged")


def _plugin_failure(plugin: str, exc: BaseException) -> RuleResult:
    """Whatever a plugin raised (SystemExit too) is its failure, and the call blocks; only
    Ctrl-C on the main thread is the person at the keyboard, and goes on up."""
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is \
            threading.main_thread():
        raise exc
    return failed(plugin, f"raised {type(exc).__name__}: {exc}")


def _verdict(answer: Any) -> RuleResult:
    """A plugin's answer as a rule result; ValueError if it is not a whole verdict."""
    if isinstance(answer, dict):
        if "action" not in answer:
            raise ValueError("answered a dict without an 'action'")
        try:
            answer = RuleResult.from_dict({"passed": False, "rule_name": "plugin", **answer})
        except TypeError as exc:
            raise ValueError(f"answered a dict that is not a verdict ({exc})") from None
    if not isinstance(answer, RuleResult):
        raise ValueError(f"answered a {type(answer).__name__}, not a RuleResult or a dict")
    if answer.action not in ACTIONS:
        raise ValueError(f"answered the unknown action {answer.action!r} (staso knows "
                         f"{', '.join(ACTIONS)})")
    if answer.mode not in _MODES or not isinstance(answer.passed, bool):
        raise ValueError(f"answered mode={answer.mode!r}, passed={answer.passed!r}")
    if answer.severity not in SEVERITIES:
        raise ValueError(f"answered the unknown severity {answer.severity!r} (staso knows "
                         f"{', '.join(SEVERITIES)})")
    if not isinstance(answer.rule_name, str) or not isinstance(answer.reason, str) \
            or len(answer.rule_name) > _NAME_LIMIT:
        raise ValueError("answered a rule_name or reason that is not text (or a rule_name "
                         f"over {_NAME_LIMIT} characters)")
    if answer.action == "modify" and not answer.passed and answer.mode == "enforce":
        # a verdict carries no rewritten input: a modify would run the call unchanged
        raise ValueError("answered modify, which a plugin cannot give (a verdict carries no "
                         "rewritten input): answer allow, block or escalate, or rewrite "
                         "inputs with a policy pack's modify rule")
    return answer


class GuardHooks:
    """The guard-path hooks of one plugin manager, in pluggy's calling order."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        hooks = pm.hook

        def impls(hook: Any) -> list[tuple[str, Any]]:
            # pluggy calls the last registered first (tryfirst/trylast already sorted)
            return [(i.plugin_name, i.function) for i in reversed(hook.get_hookimpls())]

        self.before = impls(hooks.staso_before_guard)
        self.evaluate = impls(hooks.staso_evaluate)
        self._running: dict[str, str] = {}  # decision id -> the plugin being called
        self._deciding = threading.local()  # the decision this thread evaluates
        self._pm = pm
        self.blames_cel = any(i.plugin_name not in BUILTIN_PLUGINS
                              for i in hooks.staso_cel_functions.get_hookimpls())

    def cel_functions(self) -> dict[str, Any]:
        """Every CEL function by name; a third-party plugin's is wrapped, so a call hung
        in it is blamed on the plugin."""
        from .policy.discovery import collect_functions  # (the client imports this module)

        return collect_functions(self._pm, self._blamed)

    def _blamed(self, plugin: str, function: Any) -> Any:
        if plugin in BUILTIN_PLUGINS:  # staso's own: nothing to blame, no wrapper to pay
            return function

        @functools.wraps(function)
        def call(*args: Any) -> Any:
            decision_id = getattr(self._deciding, "decision_id", None)
            if decision_id is None:
                return function(*args)
            self._running[decision_id] = plugin
            try:
                return function(*args)
            finally:
                self._running.pop(decision_id, None)
        return call

    @contextlib.contextmanager
    def deciding(self, decision_id: str) -> Iterator[None]:
        """This thread evaluates ``decision_id`` (a plugin's CEL function is blamed on it)."""
        self._deciding.decision_id = decision_id
        try:
            yield
        finally:
            self._deciding.decision_id = None

    def running(self, decision_id: str) -> str | None:
        """The plugin this call is in right now, if any (read when the caller gives up)."""
        return self._running.get(decision_id)

    def holding(self) -> str | None:
        """A plugin some call is in right now: when a call timed out before its evaluation
        even started, the threads were held by calls stuck in it."""
        return next(iter(list(self._running.values())), None)

    def blame(self, decision_id: str, started: bool) -> str | None:
        """The plugin a call that gave up at its timeout was waiting for, if any."""
        return self.running(decision_id) or (None if started else self.holding())

    def _call(self, plugin: str, function: Any, request: GuardRequest) -> Any:
        self._running[request.decision_id] = plugin
        try:
            return function(request=request)
        finally:
            self._running.pop(request.decision_id, None)

    def run_before(self, request: GuardRequest) -> RuleResult | None:
        """Every ``staso_before_guard``; the failure verdict of the first that raised."""
        for plugin, function in self.before:
            try:
                self._call(plugin, function, request)
            except BaseException as exc:
                return _plugin_failure(plugin, exc)
        return None

    def verdict(self, request: GuardRequest) -> RuleResult | None:
        """The first non-None ``staso_evaluate`` answer, checked; or a failure verdict."""
        for plugin, function in self.evaluate:
            try:
                answer = self._call(plugin, function, request)
            except BaseException as exc:
                return _plugin_failure(plugin, exc)
            if answer is None:
                continue
            try:
                return _verdict(answer)
            except ValueError as exc:
                return failed(plugin, str(exc))
        return None
