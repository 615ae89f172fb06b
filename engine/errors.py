"""The store's one error tree. Users read str(error): it says what went wrong and what to do.

    StoreError                      anything the user can act on (exit code 1, ephemeral reply)
    ├── NotFound                    unknown model, version, job, dataset ("did you mean ...")
    ├── InvalidInput                a bad value, option or file
    │   └── DatasetInvalid          a Q&A file with problems, each with its row or line
    ├── PermissionDenied            the caller may not do this; says who can
    ├── Busy                        queue full or rate limited; try again in a moment
    ├── Conflict                    the request clashes with the store's state (name taken, ...)
    ├── ModelUnavailable            weights missing, package not installed, cannot load
    └── DatabaseError               the database cannot be reached or opened (from storage)

Anything that is not a StoreError is a bug: adapters log it with a reference id and show
the user that id.
"""

from __future__ import annotations

from storage.errors import DatabaseError, StorageError

__all__ = [
    "StoreError", "NotFound", "InvalidInput", "DatasetInvalid", "PermissionDenied", "Busy",
    "Conflict", "ModelUnavailable", "DatabaseError", "StorageError", "Cancelled",
]


class StoreError(Exception):
    """A failure the user can act on."""


class NotFound(StoreError):
    """Something named by the user does not exist (or is not visible to them)."""


class InvalidInput(StoreError):
    """A value, option or file is not acceptable."""


class DatasetInvalid(InvalidInput):
    """A Q&A file was refused. `problems` lists each problem with its row or line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        full = message if not self.problems else message + "\n" + "\n".join(
            f"- {p}" for p in self.problems)
        super().__init__(full)
        self.summary = message


class PermissionDenied(StoreError):
    """The caller lacks the right; the message says who has it."""


class Busy(StoreError):
    """Too much at once: a full queue or a rate limit. Try again in a moment."""


class Conflict(StoreError):
    """The request clashes with the store's state."""


class ModelUnavailable(StoreError):
    """A model's weights cannot be found or loaded."""


class Cancelled(Exception):
    """Raised inside a job body when the user cancelled; the worker records `cancelled`.
    Not a StoreError: it is a way out of a job, never a message for a chat user."""


def is_user_error(exc: BaseException) -> bool:
    """True for errors whose message is meant for the user."""
    return isinstance(exc, (StoreError, StorageError))
