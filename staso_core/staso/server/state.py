"""What one server process holds: store, decision service, policy version, keys, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..approvers import Approver
from ..channels.base import Channel, ChannelContext
from ..channels.outbox import Outbox
from ..dead_letters import DEAD_LETTER_FILE
from ..errors import StasoError, StoreUnavailable
from ..models import Escalation, GuardRequest, GuardResult
from ..plugins import dashboard_links, make_plugin_manager
from ..policy import Engine, Policy
from ..policy.discovery import DEFAULT_POLICY, collect_functions, load_policy_source
from ..service import DecisionService, shorten_gil_slices
from ..settings import default_home, env_int
from ..store import StoreBackend, open_store
from .guesses import GuessLimiter, KeyCache
from .metrics import Metrics

log = logging.getLogger("staso.server")


# Why 8 evaluation threads: evaluation is CPU work under one GIL, so threads add no
# throughput; what they buy is room. A slow evaluation (a crafted input, a slow plugin)
# holds its thread until it finishes, and every other call queues behind the busy ones.
# Eight leaves a free thread for ordinary calls while up to seven slow ones are in flight,
# for a few MB of idle stacks. STASO_EVAL_WORKERS changes it. (Threads share the GIL: a
# detector stuck in one C call that keeps it, such as a regular expression, still stalls
# the loop; the detectors' linear time is what bounds that.)
DEFAULT_EVAL_WORKERS = 8
# Inputs up to this many bytes of JSON are evaluated on the event loop itself. Measured
# with the 50-rule benchmark policy on 2 busy cores, the hop to a worker thread cost about
# 20 µs of server CPU per decision (~370 µs with the hop, ~350 µs without: ~5 % of
# decisions/s), while staso's own detectors, linear in their input, take well under a
# millisecond on a few KB. A policy that calls code staso does not ship (a plugin's CEL
# function, staso_before_guard or staso_evaluate) is never evaluated on the loop, whatever
# the size: its cost is unknown. STASO_INLINE_EVAL_BYTES=0 sends every call to the pool.
DEFAULT_INLINE_BYTES = 4096
# Inputs over this size (where crafted slowness lives: detectors' time grows with the text)
# get a lane of their own, 2 threads. Threads share one GIL, so each CPU-bound evaluation
# running at once is one more thread the event loop must win the GIL from: four pure-Python
# evaluations at once put other agents' p99 at ~150 ms (benchmarks/stall.py). Two large
# evaluations at a time keep the loop's share, yet one stuck large call does not hold up
# every other large one. Small calls never wait behind large ones.
LARGE_INPUT_BYTES = 64 * 1024
DEFAULT_LARGE_EVAL_WORKERS = 2
# The policy part of a large call's evaluation runs in worker processes (as many as the
# large-input threads, which wait on them). Threads share the GIL, and the detectors spend
# single C calls of up to ~40 ms on a crafted 1 MB input (a regular expression keeps the
# GIL throughout): on threads, four such requests in flight put other agents' p99 near
# 200 ms; in processes the event loop never waits for them. Small calls stay in-process:
# the hop to a process (pickling, a pipe) would cost more than their evaluation.
# STASO_LARGE_EVAL_PROCESSES=0 keeps large calls on the threads.
DEFAULT_LARGE_EVAL_PROCESSES = 2


@dataclass
class ServerConfig:
    database_url: str
    policy: str | Path | None = None  # a YAML file; stored as a new version when it changed
    max_input_bytes: int = 1024 * 1024
    policy_refresh_seconds: float = 1.0
    key_cache_seconds: float = 1.0  # how long a revoked key may still work
    key_guess_limit: int = 20  # wrong keys per client address in any key_guess_window
    key_guess_window: float = 60.0
    long_poll_limit: float = 60.0
    eval_workers: int = field(default_factory=lambda: env_int("STASO_EVAL_WORKERS",
                                                               DEFAULT_EVAL_WORKERS))
    inline_eval_bytes: int = field(default_factory=lambda: env_int("STASO_INLINE_EVAL_BYTES",
                                                                    DEFAULT_INLINE_BYTES, 0))
    large_eval_workers: int = field(default_factory=lambda: env_int(
        "STASO_LARGE_EVAL_WORKERS", DEFAULT_LARGE_EVAL_WORKERS))
    large_eval_processes: int = field(default_factory=lambda: env_int(
        "STASO_LARGE_EVAL_PROCESSES", DEFAULT_LARGE_EVAL_PROCESSES, 0))
    plugins: tuple[Any, ...] = field(default_factory=tuple)
    # where decision-log records the database refuses go (see dead_letters.py)
    dead_letter_file: Path = field(default_factory=lambda: default_home() / DEAD_LETTER_FILE)


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.pm = make_plugin_manager(config.plugins)
        self.dashboard_links = dashboard_links(self.pm)  # a bad link stops the server here
        self.store: StoreBackend = open_store(config.database_url)
        # what a --policy file replaced that was not from a --policy file (a push): said by
        # staso serve, so restarting a replica never undoes a colleague's push unseen
        self.replaced_policy: str | None = None
        self.policy_version, self.policy_source, policy = self._initial_policy()
        self.service = DecisionService(self.store, policy, self.pm,
                                       dead_letter_file=config.dead_letter_file,
                                       policy_version=self.policy_version or None)
        self.keys = KeyCache(self.store, config.key_cache_seconds,
                             GuessLimiter(config.key_guess_limit, config.key_guess_window))
        self.metrics = Metrics()
        if config.eval_workers < 1:
            raise StasoError(f"eval_workers must be at least 1, not {config.eval_workers}")
        # policy evaluation only: database reads use asyncio's default pool, so a pool full
        # of slow evaluations never delays /healthz, long-polls or approvals
        self.evaluator = ThreadPoolExecutor(config.eval_workers,
                                            thread_name_prefix="staso-eval")
        self.large_evaluator = ThreadPoolExecutor(max(config.large_eval_workers, 1),
                                                  thread_name_prefix="staso-eval-large")
        # a plugin given as an object cannot be loaded by a worker process: threads then
        importable = all(isinstance(p, str) for p in config.plugins)
        self.isolated = _IsolatedPolicy(self, config) \
            if config.large_eval_processes and importable else None
        self._refresher: asyncio.Task[None] | None = None
        # the approval channels this environment configures (a half-configured one stops
        # the server here) and the worker that delivers their queue
        self.channels = configured_channels(self.pm, self.store)
        self.outbox = Outbox(self.store, self.channels) if self.channels else None
        if self.outbox is not None:
            self.pm.register(self.outbox, name="staso-outbox")  # woken by its hooks

    # -- policy versions ----------------------------------------------------------------
    def load(self, source: str, path: str) -> Policy:
        return load_policy_source(source, path, self.pm)

    def _initial_policy(self) -> tuple[int, str, Policy]:
        if self.config.policy is not None:
            path = Path(self.config.policy)
            try:
                source = path.read_text()
            except OSError as exc:
                raise StasoError(f"cannot read the policy file {path}: {exc}") from exc
            policy = self.load(source, str(path))  # a bad file stops the server here
            stored = self.store.latest_policy()
            if stored is not None and stored[1] == source:
                return stored[0], source, policy
            if stored is not None:
                newest = self.store.policy_version(stored[0]) or {}
                by = str(newest.get("created_by") or "")
                if not by.startswith("staso serve --policy"):
                    self.replaced_policy = (
                        f"policy version {stored[0]} (installed by {by or 'someone'}) is "
                        f"replaced by {path} on every replica; to keep it, restart without "
                        f"--policy or put it in that file")
            return self.store.save_policy(source, by=f"staso serve --policy {path}"), \
                source, policy
        stored = self.store.latest_policy()
        if stored is not None:
            return stored[0], stored[1], self.load(stored[1], f"<policy v{stored[0]}>")
        source = DEFAULT_POLICY.read_text()
        return 0, source, self.load(source, str(DEFAULT_POLICY))

    def put_policy(self, source: str, by: str) -> int:
        """Validate, store and apply a new policy version (other replicas follow)."""
        policy = self.load(source, "<uploaded policy>")
        version = self.store.save_policy(source, by=by)
        self._apply(version, source, policy)
        return version

    def _apply(self, version: int, source: str, policy: Policy) -> None:
        if version > self.policy_version:
            self.service.set_policy(policy, version)
            self.policy_version, self.policy_source = version, source
            log.info("staso: policy version %d in force", version)

    async def _refresh_policy(self) -> None:
        """Follow policy versions written by other replicas."""
        while True:
            await asyncio.sleep(self.config.policy_refresh_seconds)
            try:
                if await asyncio.to_thread(self.store.latest_version) > self.policy_version:
                    stored = await asyncio.to_thread(self.store.latest_policy)
                    if stored is not None:
                        self._apply(stored[0], stored[1],
                                    self.load(stored[1], f"<policy v{stored[0]}>"))
            except Exception as exc:  # keep guarding on the policy in force
                log.warning("staso: could not refresh the policy: %s", exc)

    # -- answers --------------------------------------------------------------------------
    async def resolve(self, escalation_id: str, *, status: str, by: str,
                      approver: Approver | None = None, comment: str | None = None,
                      modified_input: dict[str, Any] | None = None,
                      via: str | None = None, grant: Any = None) -> Escalation:
        """Approve or deny as ``approver`` (the key's person, checked against the
        escalation's approvers; a plugin's route without one answers as the approver keys
        named ``by``), counted in the metrics: what the API, the dashboard and
        the approval channels all call (the database write runs off the event loop).
        ``via``: where the answer came from, shown wherever the escalation is. ``grant``:
        a standing approval's scope, given with an approval."""
        esc = await asyncio.to_thread(self.service.resolve, escalation_id, status=status,
                                      by=by, comment=comment, modified_input=modified_input,
                                      via=via, approver=approver, grant=grant)
        if esc.status != "pending":
            self.metrics.resolved(status)
        return esc

    # -- lifecycle ----------------------------------------------------------------------
    def evaluator_for(self, size: int) -> ThreadPoolExecutor:
        """The pool for a call of ``size`` bytes of JSON: large inputs have their own."""
        return self.large_evaluator if size > LARGE_INPUT_BYTES else self.evaluator

    def evaluate_large(self, call: GuardRequest) -> GuardResult:
        """A large call's decision, its policy part in a worker process when there is one
        (run on a large-input thread, which waits for it)."""
        if self.isolated is None:
            return self.service.evaluate(call)
        return self.service.evaluate(call, self.isolated.evaluate)

    def start(self) -> None:
        shorten_gil_slices()  # the event loop gets the GIL back from busy evaluations
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_policy())
        if self.outbox is not None:
            self.outbox.start()

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for pool in (self.evaluator, self.large_evaluator):
            pool.shutdown(wait=False, cancel_futures=True)
        if self.outbox is not None:
            await asyncio.to_thread(self.outbox.stop)
        if self.isolated is not None:
            self.isolated.close()
        await asyncio.to_thread(self.service.close)


def configured_channels(pm: Any, store: StoreBackend) -> dict[str, Channel]:
    """Each approval channel (``staso_channels``) the environment configures, by scheme."""
    context = ChannelContext(public_url=public_url(), store=store)
    found: dict[str, Channel] = {}
    for classes in pm.hook.staso_channels():
        for cls in classes or ():
            channel = cls.from_env(os.environ, context)
            if channel is not None:
                found[cls.scheme] = channel
    return found


def public_url() -> str | None:
    """``STASO_PUBLIC_URL``, where people reach this server (links in Slack and e-mail)."""
    url = os.environ.get("STASO_PUBLIC_URL", "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise StasoError(f"STASO_PUBLIC_URL={url!r} must start with http:// or https://")
    return url or None


class _IsolatedPolicy:
    """The policy in force, evaluated in worker processes (spawned, so no lock held by a
    server thread is copied into them). Each worker loads a policy version once and keeps
    it; the source travels with each call, so a new version reaches them at once. Workers
    start on the first large call (about a second once): a server that never gets one
    never pays for them."""

    def __init__(self, state: ServerState, config: ServerConfig) -> None:
        self.state, self.workers = state, config.large_eval_processes
        self.plugins = tuple(str(p) for p in config.plugins)
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(self.plugins,))

    def evaluate(self, call: GuardRequest) -> GuardResult:
        version, source = self.state.policy_version, self.state.policy_source
        pool = self._pool
        try:
            return pool.submit(_worker_evaluate, version, source, call).result()
        except BrokenProcessPool as exc:  # a worker died (killed, out of memory)
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            raise StoreUnavailable(f"the policy worker process stopped ({exc}); "
                                   "the next call gets a new one") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_worker: dict[str, Any] = {}


def _worker_start(plugins: tuple[str, ...]) -> None:
    _worker["pm"] = make_plugin_manager(plugins)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="staso-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """A worker outlives a server killed with SIGKILL (it holds its own end of the call
    queue, so it never sees the queue close): it leaves once its parent is gone."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _worker_evaluate(version: int, source: str, call: GuardRequest) -> GuardResult:
    pm = _worker["pm"]
    if _worker.get("version") != version:
        policy = load_policy_source(source, f"<policy v{version}>", pm)
        _worker["engine"], _worker["version"] = Engine(policy, collect_functions(pm)), version
    result: GuardResult = _worker["engine"].evaluate(call.tool_name, call.tool_input,
                                                     call.context, call.decision_id)
    return result
