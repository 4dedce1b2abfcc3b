"""The channels' delivery workers, in each ``staso serve`` process.

One thread announces: it times out escalations past their expiry and queues posts for
escalations not yet announced, updates for those answered since, and updates for those
that one approval of several moved closer to their quorum (told by the
``staso_escalation_approval`` hook in the process that counted it). Each configured
channel has ``DELIVERERS`` threads of its own that deliver its queue, so a slow Slack
holds up neither e-mail nor, with one delivery stuck, the rest of Slack's queue. The
queue is the database's ``notices`` table (``store/notices.py``): a channel that is down
delays no guard call (nothing on a call's path waits for it), a restart loses nothing, and
any replica delivers. A notice is leased just before its delivery, one at a time; a
replica that dies with one leased leaves it to the others once the lease ends. A replica
leases only the channels it has configured: a notice for another (a rolling deploy, one
replica not yet given the Slack settings) waits for a replica that has it, and the log
says so.

A failed delivery is retried with exponential backoff (2 s, 4 s, … at most 5 min, or as
long as the channel asks), logged each time, and counted in ``/metrics``; after
``MAX_ATTEMPTS`` it is given up, logged as an error. The worker wakes at once when this
process creates or answers an escalation (the hooks below), and polls every ``poll``
seconds for what other processes did.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Any

from ..errors import EscalationNotFound
from ..hookspecs import hookimpl
from ..models import Escalation
from ..store import StoreBackend
from ..store.notices import Notice
from .base import Channel, DeliveryError
from .routing import targets

log = logging.getLogger("staso.channels")

MAX_ATTEMPTS = 12  # about 1 h 40 min of retries with the backoff below
DELIVERERS = 2  # threads per channel
BACKOFF_FIRST, BACKOFF_MOST = 2.0, 300.0
LEASE_SECONDS = 120.0  # far longer than one delivery takes (Slack and SMTP: 10 s timeouts)
WAIT_FOR_POST = 1.0  # an update waits this long, uncounted, for its post to be delivered
CATCH_UP = 3  # times an update is sent again if the escalation changed while it was sent


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``, jittered so replicas do not retry in step."""
    return min(BACKOFF_MOST, BACKOFF_FIRST * 2 ** max(attempts - 1, 0)) * random.uniform(0.8,
                                                                                         1.2)


class Outbox:
    def __init__(self, store: StoreBackend, channels: dict[str, Channel], *,
                 poll: float = 1.0) -> None:
        self.store, self.channels, self.poll = store, channels, poll
        self.sent: Counter[tuple[str, str]] = Counter()  # (scheme, kind)
        self.failures: Counter[str] = Counter()  # failed attempts by scheme
        self.given_up: Counter[str] = Counter()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._due: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._warned: set[str] = set()
        self._approved: set[str] = set()  # escalations with an approval toward a quorum
        self._approved_lock = threading.Lock()

    # -- the hooks that wake it (registered as a plugin by the server) ------------------
    @hookimpl
    def staso_escalation_created(self, escalation: Escalation) -> None:
        self.wake()

    @hookimpl
    def staso_escalation_approval(self, escalation: Escalation) -> None:
        with self._approved_lock:
            self._approved.add(escalation.id)
        self.wake()

    @hookimpl
    def staso_escalation_resolved(self, escalation: Escalation) -> None:
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._due = {scheme: threading.Event() for scheme in self.channels}
        self._threads = [threading.Thread(target=self._announcing, daemon=True,
                                          name="staso-outbox")]
        self._threads += [threading.Thread(target=self._delivering, args=(scheme,),
                                           daemon=True, name=f"staso-outbox-{scheme}-{i}")
                          for scheme in self.channels for i in range(DELIVERERS)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for event in self._due.values():
            event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        for channel in self.channels.values():
            channel.close()

    def _announcing(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.announce()
            except Exception as exc:  # the database is down: try again next pass
                log.warning("staso: the approval channels' queue could not be read: %s", exc)
            self._wake.wait(self.poll)

    def _delivering(self, scheme: str) -> None:
        due = self._due[scheme]
        while not self._stop.is_set():
            try:
                delivered = self.deliver_next(scheme)
            except Exception as exc:
                log.warning("staso: the %s queue could not be read: %s", scheme, exc)
                delivered = False
            if not delivered:
                due.wait(self.poll)
                due.clear()

    # -- the steps ---------------------------------------------------------------------------
    def announce(self, now: float | None = None) -> None:
        """Expire what is due, queue posts and updates, and wake the deliverers."""
        store = self.store
        store.expire_due(now)
        store.announce_new(lambda esc: targets(esc, self.channels), now=now)
        store.announce_answers(self._updates, now=now)
        self._announce_approvals(now)
        for event in self._due.values():
            event.set()
        self._warn_unconfigured(now)

    def _announce_approvals(self, now: float | None) -> None:
        """Queue updates showing the approvals counted here since the last pass; an
        escalation whose updates could not be queued (the database is down) is tried
        again on the next pass."""
        with self._approved_lock:
            approved, self._approved = self._approved, set()
        left = set(approved)
        try:
            for escalation_id in approved:
                self.store.queue_updates(escalation_id, self._updates, now=now)
                left.discard(escalation_id)
        finally:
            with self._approved_lock:
                self._approved |= left

    def deliver_next(self, scheme: str) -> bool:
        """Deliver the next due notice of one channel; False if none was due."""
        notice = self.store.lease_next(scheme, lease=LEASE_SECONDS)
        if notice is None:
            return False
        self._deliver(notice)
        return True

    def _warn_unconfigured(self, now: float | None) -> None:
        """Say, once a channel, that notices wait for a channel this replica lacks."""
        missing = self.store.pending_schemes(now=now) - set(self.channels) - self._warned
        for scheme in sorted(missing):
            log.warning("staso: notices for the %r channel are queued, and this server has "
                        "not configured it: they wait for a replica that has (configure it "
                        "here, or remove it from the policy's notify: targets)", scheme)
        self._warned |= missing

    def _updates(self, scheme: str) -> bool:
        channel = self.channels.get(scheme)
        return channel is not None and channel.updates

    def _deliver(self, notice: Notice) -> None:
        store = self.store
        try:
            esc = store.get_escalation(notice.escalation_id)
        except EscalationNotFound:
            store.notice_done(notice.id, state="skipped", error="the escalation is gone")
            return
        channel = self.channels[notice.scheme]
        ref: dict[str, Any] | None = None
        try:  # only the channel's own failures are retried: a post is never made twice
            if notice.kind == "post":  # for a bookkeeping error after it succeeded
                ref = channel.post(notice.address, esc)
            else:
                post = self._post_of(notice)
                if post is None or post.state in ("failed", "skipped"):
                    store.notice_done(notice.id, state="skipped",
                                      error="its post was never delivered")
                    return
                if post.state == "queued":  # not delivered yet: wait for it, uncounted
                    store.notice_retry(notice.id, next_at=time.time() + WAIT_FOR_POST)
                    return
                channel.update(notice.address, esc, post.ref or {})
                self._catch_up(notice, channel, esc, post.ref or {})
        except Exception as exc:
            self._failed(notice, exc)
            return
        self.sent[(notice.scheme, notice.kind)] += 1
        store.notice_done(notice.id, ref=ref)

    def _catch_up(self, notice: Notice, channel: Channel, shown: Escalation,
                  ref: dict[str, Any]) -> None:
        """Send the update again if the escalation changed while it was being sent: two
        updates of one post (an approval, then the answer) may be delivered by two
        threads at once, and the one rendered first may reach the channel last. Whoever
        sent last then looks again, so the post ends showing the escalation as it is."""
        for _ in range(CATCH_UP):
            current = self.store.get_escalation(notice.escalation_id)
            if _shown(current) == _shown(shown):
                return
            channel.update(notice.address, current, ref)
            shown = current

    def _post_of(self, update: Notice) -> Notice | None:
        return next((n for n in self.store.notices_for(update.escalation_id)
                     if n.kind == "post" and n.target == update.target), None)

    def _failed(self, notice: Notice, exc: Exception) -> None:
        attempts = notice.attempts + 1
        retry = exc.retry if isinstance(exc, DeliveryError) else True
        error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        self.failures[notice.scheme] += 1
        what = f"the {notice.kind} of {notice.escalation_id} to {notice.target}"
        if not retry or attempts >= MAX_ATTEMPTS:
            self.given_up[notice.scheme] += 1
            log.error("staso: gave up on %s after %d attempt(s): %s", what, attempts, error)
            self.store.notice_done(notice.id, state="failed", error=error)
            return
        wait = exc.after if isinstance(exc, DeliveryError) and exc.after else backoff(attempts)
        log.warning("staso: %s failed (attempt %d, next in %.0f s): %s", what, attempts, wait,
                    error)
        self.store.notice_retry(notice.id, next_at=time.time() + wait, error=error)

    # -- /metrics -------------------------------------------------------------------------
    def metrics_lines(self, queued: dict[str, int] | None) -> list[str]:
        lines = [
            "# HELP staso_channel_notices_sent_total Escalation posts and updates delivered.",
            "# TYPE staso_channel_notices_sent_total counter",
            *(f'staso_channel_notices_sent_total{{channel="{s}",kind="{k}"}} {n}'
              for (s, k), n in sorted(self.sent.items())),
            "# HELP staso_channel_delivery_failures_total Failed delivery attempts.",
            "# TYPE staso_channel_delivery_failures_total counter",
            *(f'staso_channel_delivery_failures_total{{channel="{s}"}} {n}'
              for s, n in sorted(self.failures.items())),
            "# HELP staso_channel_notices_given_up_total Notices given up after retries.",
            "# TYPE staso_channel_notices_given_up_total counter",
            *(f'staso_channel_notices_given_up_total{{channel="{s}"}} {n}'
              for s, n in sorted(self.given_up.items())),
        ]
        if queued is not None:
            lines += ["# HELP staso_channel_notices Notices in the database, by state.",
                      "# TYPE staso_channel_notices gauge",
                      *(f'staso_channel_notices{{state="{state}"}} {queued.get(state, 0)}'
                        for state in ("queued", "sent", "failed", "skipped"))]
        return lines


def _shown(escalation: Escalation) -> tuple[Any, ...]:
    """What an update shows of an escalation that can change after it was posted."""
    return (escalation.status, len(escalation.approvals or ()), escalation.resolved_at)
