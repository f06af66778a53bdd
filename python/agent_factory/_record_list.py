"""``RecordList``: the list every listing call returns, with notebook views.

A ``list`` subclass, so it compares, slices, serializes (``json``, ``pickle``) and
type-checks as a list, that also knows the record type it holds (even when
empty), renders as an HTML table in Jupyter and turns into a pandas DataFrame on
demand. pandas is optional: it is imported inside :meth:`RecordList.to_pandas`
only.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Generic, SupportsIndex, TypeVar, overload

from . import _html

__all__ = ["RecordList", "plain", "require_pandas"]

_T = TypeVar("_T")

PANDAS_HINT = "pip install pandas  (or: pip install 'agent-factory[notebook]')"


def require_pandas() -> Any:
    """The ``pandas`` module, or ``ImportError`` saying how to install it."""
    try:
        return importlib.import_module("pandas")
    except ImportError as e:  # pragma: no cover - exercised where pandas is missing
        raise ImportError(f"to_pandas() needs pandas, which is not installed: {PANDAS_HINT}") from e


def plain(value: Any) -> Any:
    """``value`` with records turned into dicts and lists (``RecordList`` included) into
    plain lists, recursively; other values pass through, their containers copied."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


class RecordList(list[_T], Generic[_T]):
    """A list of records (``RecordList[Worker]``, ``RecordList[Job]``, …).

    Everything a ``list`` does, plus:

    - :attr:`item_type`: the record type, known even for an empty list;
    - ``_repr_html_``: a table of the records' fields in Jupyter (long text cut
      with an ellipsis, times in UTC, statuses as coloured badges; an empty list
      is a one-line "no rows" note; at most :attr:`html_max_rows` rows);
    - :meth:`to_pandas`: a DataFrame with one row per record and one column per
      dataclass field;
    - :meth:`to_dicts`: plain dicts, ready for ``json.dumps``.

    Slicing returns a ``RecordList`` of the same type.
    """

    __slots__ = ("_item_type",)

    #: Rows drawn by ``_repr_html_``; the rest is summarized in a note.
    html_max_rows: ClassVar[int] = 200

    def __init__(self, items: Iterable[_T] = (), item_type: type | None = None) -> None:
        super().__init__(items)
        self._item_type = item_type

    @property
    def item_type(self) -> type | None:
        """The record type: the one given at construction, else the first item's type
        (``None`` for an empty list built without one)."""
        if self._item_type is not None:
            return self._item_type
        return type(self[0]) if self else None

    @overload
    def __getitem__(self, index: SupportsIndex) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> RecordList[_T]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> _T | RecordList[_T]:
        got = super().__getitem__(index)
        if isinstance(index, slice):
            return RecordList(got, self.item_type)  # type: ignore[arg-type]
        return got  # type: ignore[return-value]

    def copy(self) -> RecordList[_T]:
        """A shallow copy (a ``RecordList`` of the same type)."""
        return RecordList(self, self.item_type)

    def columns(self) -> list[str]:
        """The :meth:`to_pandas` columns: the record type's dataclass fields (for
        mappings, their keys in first-seen order; otherwise ``["value"]``)."""
        kind = self.item_type
        if kind is not None and dataclasses.is_dataclass(kind):
            return [f.name for f in dataclasses.fields(kind)]
        if kind is not None and issubclass(kind, Mapping):
            return list(dict.fromkeys(k for item in self for k in item))  # type: ignore[attr-defined]
        return ["value"]

    def _row(self, item: Any) -> dict[str, Any]:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item)}
        if isinstance(item, Mapping):
            return {str(k): plain(v) for k, v in item.items()}
        return {"value": plain(item)}

    def to_dicts(self) -> list[dict[str, Any]]:
        """Each record as a plain dict (nested records as dicts, lists as lists)."""
        return [self._row(item) for item in self]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame``: one row per record, one column per dataclass field
        (in field order; an empty list still has the columns).

        Nested records (e.g. a worker's ``assignment``) are kept as dicts and lists
        as lists, one cell each, so no field is lost or renamed; flatten with
        ``pandas.json_normalize(records.to_dicts())`` when you want dotted
        columns. Timestamps stay epoch milliseconds (``pandas.to_datetime(df.created_at,
        unit="ms", utc=True)`` converts them). Raises ``ImportError`` with the install
        command when pandas is missing."""
        pd = require_pandas()
        return pd.DataFrame.from_records(self.to_dicts(), columns=self.columns())

    def _html_columns(self) -> list[str]:
        kind = self.item_type
        chosen = getattr(kind, "_html_columns", ()) if kind is not None else ()
        return list(chosen) if chosen else self.columns()

    def _repr_html_(self) -> str:
        """The records as an HTML table (see the class docs)."""
        kind = self.item_type
        name = kind.__name__ if kind is not None else "record"
        if not self:
            return _html.note(f"no rows ({name})")
        columns = self._html_columns()
        shown = list.__getitem__(self, slice(0, self.html_max_rows))
        rows = [
            [_html.cell(path.rsplit(".", 1)[-1], _html.column_value(item, path)) for path in columns] for item in shown
        ]
        caption = f"{name} · {len(self)} row{'' if len(self) == 1 else 's'}"
        out = _html.table([path.rsplit(".", 1)[-1] for path in columns], rows, caption=caption)
        if len(self) > len(shown):
            out = _html.Html(out + _html.note(f"… {len(self) - len(shown)} more rows not drawn (to_pandas() has them all)"))
        return out
