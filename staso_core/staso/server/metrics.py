"""Prometheus text exposition (format 0.0.4) for a handful of counters; no dependency."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..decision_log import DecisionLog

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: Counter[str] = Counter()
        self.resolutions: Counter[str] = Counter()
        self.http_errors: Counter[int] = Counter()
        self._latency_hits = [0] * (len(_BUCKETS) + 1)  # per bucket, not cumulative
        self.latency_sum = 0.0
        self.latency_count = 0
        self.long_polls = 0

    def decided(self, action: str, seconds: float) -> None:
        with self._lock:
            self.decisions[action] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            # one bucket per decision, cumulated when rendered: 2.3 -> 0.5 µs a decision
            # against adding to every bucket at or above it
            self._latency_hits[bisect_left(_BUCKETS, seconds)] += 1

    def resolved(self, status: str) -> None:
        with self._lock:
            self.resolutions[status] += 1

    def error(self, code: int) -> None:
        with self._lock:
            self.http_errors[code] += 1

    def render(self, pending: int | None, policy_version: int,
               log: DecisionLog | None = None) -> str:
        with self._lock:
            lines = [
                "# HELP staso_decisions_total Guard decisions by action.",
                "# TYPE staso_decisions_total counter",
                *(f'staso_decisions_total{{action="{a}"}} {self.decisions[a]}'
                  for a in ("allow", "modify", "escalate", "block")),
                "# HELP staso_guard_latency_seconds Time to decide a guard request.",
                "# TYPE staso_guard_latency_seconds histogram",
                *(f'staso_guard_latency_seconds_bucket{{le="{b}"}} {n}'
                  for b, n in zip(_BUCKETS, accumulate(self._latency_hits[:-1]), strict=True)),
                f'staso_guard_latency_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                f"staso_guard_latency_seconds_sum {self.latency_sum:.6f}",
                f"staso_guard_latency_seconds_count {self.latency_count}",
                "# HELP staso_escalations_resolved_total Escalations answered, by outcome.",
                "# TYPE staso_escalations_resolved_total counter",
                *(f'staso_escalations_resolved_total{{status="{s}"}} {self.resolutions[s]}'
                  for s in ("approved", "denied")),
                "# HELP staso_long_polls Escalation long-polls waiting now.",
                "# TYPE staso_long_polls gauge",
                f"staso_long_polls {self.long_polls}",
                "# HELP staso_http_errors_total Error responses by status code.",
                "# TYPE staso_http_errors_total counter",
                *(f'staso_http_errors_total{{code="{c}"}} {n}'
                  for c, n in sorted(self.http_errors.items())),
                "# HELP staso_policy_version The policy version in force (0: built-in).",
                "# TYPE staso_policy_version gauge",
                f"staso_policy_version {policy_version}",
            ]
        if log is not None:
            lines += [
                "# HELP staso_decision_log_dead_letters_total Decision-log records the "
                "database refused, kept in the dead-letter file.",
                "# TYPE staso_decision_log_dead_letters_total counter",
                f"staso_decision_log_dead_letters_total {log.dead_letters.count}",
                "# HELP staso_decision_log_lost_total Records neither the database nor the "
                "dead-letter file took (logged in full).",
                "# TYPE staso_decision_log_lost_total counter",
                f"staso_decision_log_lost_total {log.dead_letters.lost}",
                "# HELP staso_decision_log_write_failures_total Decision-log writes that failed.",
                "# TYPE staso_decision_log_write_failures_total counter",
                f"staso_decision_log_write_failures_total {log.write_failures}",
                "# HELP staso_decision_log_pending Records waiting to be written.",
                "# TYPE staso_decision_log_pending gauge",
                f"staso_decision_log_pending {log.pending()}",
                "# HELP staso_decision_log_healthy 1 while the decision log can be written.",
                "# TYPE staso_decision_log_healthy gauge",
                f"staso_decision_log_healthy {int(log.failing is None)}",
            ]
        if pending is not None:
            lines += ["# HELP staso_escalations_pending Escalations awaiting a person.",
                      "# TYPE staso_escalations_pending gauge",
                      f"staso_escalations_pending {pending}"]
        return "\n".join(lines) + "\n"
