"""Errors raised by the storage layer. engine.errors re-exports them into its tree."""

from __future__ import annotations


class StorageError(Exception):
    """Base of storage failures; str() is a sentence a user can act on."""


class DatabaseError(StorageError):
    """The database cannot be reached, opened or upgraded."""
