"""``BoardView``: a workboard as kanban columns, for notebooks.

Built by ``Workboard.kanban`` from one read of the core: one column per card
status in the workboard's status order (``CARD_STATUSES``), each holding the
first ``limit_per_status`` unarchived cards in board order and the column's total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from . import _views
from ._html import Html
from ._record_list import RecordList, require_pandas
from ._types import _Record
from ._workboard_types import Card
from .errors import NotFoundError, ValidationError

__all__ = ["CARD_STATUSES", "BoardColumn", "BoardView", "MAX_LIMIT_PER_STATUS", "check_limit_per_status"]

#: Card statuses in the workboard's list order (kanban columns left to right).
CARD_STATUSES: tuple[str, ...] = (
    "triage", "backlog", "todo", "scheduled", "ready", "running", "review", "blocked", "done",
)

#: The largest ``limit_per_status`` accepted.
MAX_LIMIT_PER_STATUS = 1000


def check_limit_per_status(value: Any) -> int:
    """``value`` if it is an int within ``1..=MAX_LIMIT_PER_STATUS``, else ``ValidationError``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT_PER_STATUS:
        raise ValidationError(
            f"limit_per_status must be an integer within 1..={MAX_LIMIT_PER_STATUS}, got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class BoardColumn(_Record):
    """One kanban column: a status, its number of unarchived cards (``total``) and the
    first of them in board order (``cards``, at most the view's ``limit_per_status``)."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"cards": Card}
    _html_columns: ClassVar[tuple[str, ...]] = ("status", "total", "more")

    status: str
    total: int
    cards: RecordList[Card]

    @property
    def more(self) -> int:
        """Cards of the column not in :attr:`cards`."""
        return max(self.total - len(self.cards), 0)


@dataclass(frozen=True, slots=True)
class BoardView(_Record):
    """A board (or every board: ``board_id`` ``None``) as kanban columns, read at
    ``at_ms`` (the workboard clock). Archived cards are left out.

    In Jupyter it draws the columns side by side, each card with its title,
    priority, labels and claim owner; :meth:`to_pandas` gives one row per card."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"columns": BoardColumn}

    board_id: str | None
    columns: RecordList[BoardColumn]
    limit_per_status: int
    at_ms: int

    @property
    def total(self) -> int:
        """Unarchived cards on the board (shown or not)."""
        return sum(c.total for c in self.columns)

    @property
    def statuses(self) -> list[str]:
        """The column statuses, left to right."""
        return [c.status for c in self.columns]

    @property
    def cards(self) -> RecordList[Card]:
        """The cards shown, column by column."""
        return RecordList([card for col in self.columns for card in col.cards], Card)

    def column(self, status: str) -> BoardColumn:
        """The column of ``status`` (``NotFoundError`` naming the statuses when there is none)."""
        for col in self.columns:
            if col.status == status:
                return col
        raise NotFoundError(f"board view has no column {status!r}; columns: {', '.join(self.statuses)}")

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with one row per card shown: the :class:`Card` fields
        (``status`` is the column) plus ``board_id`` and ``claim_owner``. Needs pandas."""
        pd = require_pandas()
        cards = self.cards
        frame = cards.to_pandas()
        frame["board_id"] = pd.Series([c.board_id for c in cards], dtype=object)
        frame["claim_owner"] = pd.Series([c.claim_owner for c in cards], dtype=object)
        return frame

    def _repr_html_(self) -> str:
        """The kanban: columns side by side."""
        return Html(_views.kanban_html(self))
