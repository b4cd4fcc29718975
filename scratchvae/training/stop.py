"""Stopping a run without loss: SIGINT (Ctrl-C) and SIGTERM end it after the step in flight.

While the trainer is inside a step (or writing its files) a signal is only noted; the trainer
looks at it between steps and stops there, so the state it then writes is one an
uninterrupted run passed through.  Anywhere else (loading data, validating) the signal
stops the run at once, by raising :class:`StopRequested`, which, like KeyboardInterrupt,
is not an ``Exception`` and so passes through ordinary error handling.  A second Ctrl-C
during a step stops at once too.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Handlers for SIGINT and SIGTERM while installed (``with stop_signals:``); reentrant."""

    def __init__(self):
        self.signum: int | None = None
        self._deferring = 0
        self._installed = 0
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if self._installed == 0 and threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        self._installed += 1
        return self

    def __exit__(self, *exc) -> None:
        self._installed -= 1
        if self._installed == 0:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self._previous = {}

    def _handle(self, signum, frame) -> None:
        again = self.signum is not None
        self.signum = signum
        if not self._deferring or again:
            raise StopRequested(signum)

    @contextmanager
    def deferred(self):
        """A block a signal does not cut short: it is raised after the block, by :meth:`check`."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def check(self) -> None:
        """Raise :class:`StopRequested` if a signal arrived (between steps)."""
        if self.signum is not None and not self._deferring:
            raise StopRequested(self.signum)
