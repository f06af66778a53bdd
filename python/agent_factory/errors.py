"""Exceptions raised by agent-factory.

Every error derives from :class:`AgentFactoryError`. Bad input is a
:class:`ValidationError` (also a ``ValueError``); an unknown id is a
:class:`NotFoundError` (also a ``LookupError``). A failed call has changed
nothing in the database.
"""

from __future__ import annotations

__all__ = [
    "AgentFactoryError",
    "ValidationError",
    "NotFoundError",
    "ConflictError",
    "InvalidStateError",
    "ProviderError",
    "StorageError",
    "AuthenticationError",
]


class AgentFactoryError(Exception):
    """Root of every agent-factory error."""


class ValidationError(AgentFactoryError, ValueError):
    """An argument is missing, malformed or out of range."""


class NotFoundError(AgentFactoryError, LookupError):
    """An id named by the caller does not exist."""


class ConflictError(AgentFactoryError):
    """A lease, claim or ownership is held elsewhere (e.g. a fenced-off worker)."""


class InvalidStateError(AgentFactoryError):
    """The operation is not allowed from the current state (e.g. reactivating a stopped worker)."""


class ProviderError(AgentFactoryError):
    """A remote provider (Fly Machines, Telegram) failed."""


class StorageError(AgentFactoryError):
    """SQLite, the blob store or the file system failed."""


class AuthenticationError(AgentFactoryError, PermissionError):
    """The caller could not prove who it is, e.g. a Telegram webhook request whose
    ``X-Telegram-Bot-Api-Secret-Token`` is missing or wrong. Nothing was written."""
