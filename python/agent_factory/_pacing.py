"""Interruptible pauses between control-loop ticks, blocking and asyncio.

``_async_api.py`` uses :class:`AsyncPacer`; the generated ``_sync_api.py`` uses
:class:`Pacer` (the generator drops the ``Async`` prefix), so both live here,
outside the generated code, with the same methods.

A pause ends early when the stop event is set. Blocking pauses wait on a
``threading.Event`` (or sleep), which Ctrl-C interrupts in the main thread; the
asyncio pauses wait on an ``asyncio.Event`` or poll a ``threading.Event``
without blocking the event loop, and are cancellable.

Cancelling an ``await`` does not stop the native call behind it: the tick goes on
in Rust and may still take or renew the lease. :meth:`AsyncPacer.step` keeps the
call running under a shield and :meth:`AsyncPacer.settle` waits for it, so the
loop releases its lease only after its last tick has ended.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Pacer", "AsyncPacer", "check_run_args"]

#: How often an asyncio pause looks at a ``threading.Event``.
_POLL_S = 0.05


def check_run_args(tick_ms: Any, max_ticks: Any, on_tick: Any) -> None:
    """Type and range checks shared by both faces of ``run``."""
    if isinstance(tick_ms, bool) or not isinstance(tick_ms, int):
        raise TypeError(f"tick_ms must be an int, got {type(tick_ms).__name__}")
    if not 1 <= tick_ms <= 3_600_000:
        from .errors import ValidationError

        raise ValidationError(f"tick_ms must be between 1 and 3600000, got {tick_ms}")
    if max_ticks is not None:
        if isinstance(max_ticks, bool) or not isinstance(max_ticks, int):
            raise TypeError(f"max_ticks must be an int or None, got {type(max_ticks).__name__}")
        if max_ticks < 0:
            from .errors import ValidationError

            raise ValidationError(f"max_ticks must not be negative, got {max_ticks}")
    if on_tick is not None and not callable(on_tick):
        raise TypeError(f"on_tick must be callable, got {type(on_tick).__name__}")


class Pacer:
    """Blocking pauses that end when ``stop`` (a ``threading.Event`` or ``None``) is set."""

    __slots__ = ("_stop",)

    def step(self, result: Any) -> Any:
        """A blocking call has already ended when its result is here."""
        return result

    def settle(self) -> None:
        """Nothing is left running after a blocking call."""

    def __init__(self, stop: Any) -> None:
        if stop is not None and (isinstance(stop, asyncio.Event) or not callable(getattr(stop, "is_set", None))):
            raise TypeError(f"stop must be a threading.Event or None, got {type(stop).__name__}")
        self._stop = stop

    def stop_requested(self) -> bool:
        """Whether the stop event is set."""
        return self._stop is not None and bool(self._stop.is_set())

    def wait(self, seconds: float) -> bool:
        """Pause up to ``seconds``; ``True`` when the stop event ended it."""
        if self._stop is None:
            time.sleep(max(0.0, seconds))
            return False
        return bool(self._stop.wait(max(0.0, seconds)))

    def call(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Call ``fn(arg)``; a blocking loop cannot await a coroutine function."""
        out = fn(arg)
        if inspect.isawaitable(out):
            close = getattr(out, "close", None)
            if callable(close):
                close()
            raise TypeError("on_tick returned an awaitable: pass a plain function to the blocking run()")


class AsyncPacer:
    """asyncio pauses that end when ``stop`` (``asyncio.Event``, ``threading.Event`` or ``None``) is set."""

    __slots__ = ("_stop", "_pending")

    def __init__(self, stop: Any) -> None:
        if stop is not None and not isinstance(stop, (asyncio.Event, threading.Event)):
            raise TypeError(f"stop must be an asyncio.Event, a threading.Event or None, got {type(stop).__name__}")
        self._stop = stop
        self._pending: asyncio.Future[Any] | None = None

    async def step(self, call: Any) -> Any:
        """Await ``call`` (an awaitable native call); if this await is cancelled, the
        call keeps running and :meth:`settle` waits for it."""
        pending = asyncio.ensure_future(call)
        self._pending = pending
        result = await asyncio.shield(pending)
        self._pending = None
        return result

    async def settle(self) -> None:
        """Wait for a call whose await was cancelled (its outcome no longer matters)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved, so asyncio does not log it as unhandled

    def stop_requested(self) -> bool:
        """Whether the stop event is set."""
        return self._stop is not None and self._stop.is_set()

    async def wait(self, seconds: float) -> bool:
        """Pause up to ``seconds``; ``True`` when the stop event ended it."""
        seconds = max(0.0, seconds)
        stop = self._stop
        if stop is None:
            await asyncio.sleep(seconds)
            return False
        if isinstance(stop, asyncio.Event):
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except TimeoutError:
                return False
            return True
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, _POLL_S))
        return True

    async def call(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Call ``fn(arg)`` and await the result when it is awaitable."""
        out = fn(arg)
        if inspect.isawaitable(out):
            await out
