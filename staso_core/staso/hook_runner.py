"""Notification hooks (``staso_after_guard``, ``staso_escalation_created``,
``staso_escalation_resolved``) run on a thread of their own, in the order they happened.

They cannot change a decision, so a guard call never waits for them: a plugin that posts
to a slow webhook, hangs or raises used to hold (or fail with a 500) the very call it was
told about, and on a server its event loop. A plugin's failure is logged with its name.
``drain`` waits until everything queued so far has run (``flush``, shutdown, tests).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

log = logging.getLogger("staso")
_STOP = object()


class HookRunner:
    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, hook: Any, **kwargs: Any) -> None:
        """Queue one call of ``hook`` (every implementation, pluggy's order)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="staso-hooks")
                    self._thread.start()
        self._queue.put((hook, kwargs))

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every hook queued so far has run; False if ``timeout`` passed."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put((None, done))
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self.drain(timeout)
            self._queue.put(_STOP)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            hook, kwargs = item
            if hook is None:  # a drain marker
                kwargs.set()
                continue
            for impl in reversed(hook.get_hookimpls()):  # one at a time: name who failed
                try:
                    impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
                except BaseException:
                    log.exception("staso: the plugin %r failed in %s", impl.plugin_name,
                                  hook.name)
