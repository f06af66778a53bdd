"""Typed errors for argument-conversion failures at the native boundary.

pyo3 converts each argument before any Rust code runs. When that conversion
fails it raises ``OverflowError`` (an int beyond 64 bits), ``UnicodeEncodeError``
(a lone surrogate) or ``TypeError`` (a wrong type), and names the argument only
in a note. :class:`GuardedNative` turns these into errors that name the argument
in their message: ``ValidationError`` for the first two, ``TypeError`` for the
last. Nothing has been written when they are raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ValidationError

_NOTE = re.compile(r"while processing '([^']+)'")


def _argument(exc: BaseException) -> str | None:
    for note in getattr(exc, "__notes__", ()):
        m = _NOTE.search(note)
        if m:
            return m.group(1)
    return None


def _translate(exc: BaseException) -> BaseException:
    arg = _argument(exc)
    if arg is None:
        return exc
    if isinstance(exc, OverflowError):
        return ValidationError(f"{arg} must fit in a signed 64-bit integer")
    if isinstance(exc, UnicodeEncodeError):
        return ValidationError(f"{arg} must be valid Unicode text (it contains an unpaired surrogate)")
    return TypeError(f"{arg}: {exc}")


class GuardedNative:
    """Wraps a native object; each method call translates conversion failures."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._native, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return target(*args, **kwargs)
            except (TypeError, OverflowError, UnicodeEncodeError) as exc:
                raise _translate(exc) from None

        call.__name__ = name
        self.__dict__[name] = call
        return call


def construct(factory: Callable[..., Any], *args: Any) -> GuardedNative:
    """Build a native object (translating conversion failures) and guard it."""
    try:
        return GuardedNative(factory(*args))
    except (TypeError, OverflowError, UnicodeEncodeError) as exc:
        raise _translate(exc) from None


def resolve_future(future: Any, ok: bool, value: Any) -> None:
    """Complete an asyncio future from the native async pool (runs on the event loop).
    A future whose awaiting task was cancelled is left alone."""
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
