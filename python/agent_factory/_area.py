"""Shared plumbing of the API areas (``factory.queue``, ``factory.identity``, ...).

Both faces use it: the asyncio modules (``_async_*.py``) and the blocking ones
generated from them (``tools/async_to_sync.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ValidationError

__all__ = ["_KEEP", "_Area", "_as_dict", "_dict_list", "_path_arg", "_str_dict", "_str_list"]

_KEEP: Any = object()



# Wrong Python types raise TypeError naming the argument; wrong values raise ValidationError.


def _str_list(value: Any, field: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{field} must be a list of strings, got {type(value).__name__}")
    items = list(value)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{field}[{i}] must be a string, got {type(item).__name__}")
    return items


def _dict_list(value: Any, field: str, label: str = "{field}[{i}]") -> list[dict[str, Any]]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{field} must be a list of dicts, got {type(value).__name__}")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            where = label.format(field=field, i=i)
            raise TypeError(f"{where} must be a dict, got {type(item).__name__}")
        items.append(dict(item))
    return items


def _str_dict(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{field} must be a dict, got {type(value).__name__}")
    return dict(value)


def _as_dict(value: Any, field: str) -> Any:
    if value is None or isinstance(value, Mapping):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise ValidationError(f"{field} must be a dict or a config object, got {type(value).__name__}")


def _path_arg(value: Any, field: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{field} must be a path (str or os.PathLike), got {type(value).__name__}")
    return os.fspath(value)


class _Area:
    """Shared plumbing: one native handle, calls run in Rust."""

    __slots__ = ("_n",)

    def __init__(self, native: Any) -> None:
        self._n = native
