"""The error tree of `feeds`.

Every error a user can cause derives from :class:`FeedsError` and carries the
file (and line) or URL it is about, so the CLI can print it as one line::

    FeedsError
    ├── ConfigError       config.yaml is unreadable or invalid (exit 2)
    ├── InputError        one input item is bad; it is skipped, the run goes on
    │   └── PostError     a local post (path:line)
    ├── StorageError      the state database failed
    │   └── DamagedStateError  it is damaged; the line says how to rebuild it
    ├── PublishError      an output file could not be written (exit 1)
    ├── Busy              another run holds the lock on the state or output (exit 75)
    ├── Cancelled         a run stopped early on request (a daemon shutting down)
    └── Fenced            a worker sharing a PostgreSQL state lost what allowed a write
        ├── LostLease     another worker took the source over: its result is not stored
        └── LostLeadership  another worker leads now: this one publishes nothing
"""

from __future__ import annotations


class FeedsError(Exception):
    """Root of every error `feeds` raises on purpose."""

    def __init__(self, message: str, *, where: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.line = line

    def __str__(self) -> str:
        if self.where is None:
            return self.message
        if self.line is None:
            return f"{self.where}: {self.message}"
        return f"{self.where}:{self.line}: {self.message}"


class ConfigError(FeedsError):
    """The configuration file is missing, unparsable or invalid."""


class InputError(FeedsError):
    """One input item is unusable; callers skip it and carry on."""


class PostError(InputError):
    """A local post is unusable (broken front matter, bad date, no title...)."""


class StorageError(FeedsError):
    """The state database could not be read or written."""


class DamagedStateError(StorageError):
    """The state database is damaged or is not one; its line says how to recover."""

    def __str__(self) -> str:
        return super().__str__() + "; move it aside and rebuild it with: feeds generate --rebuild-state"


class PublishError(FeedsError):
    """An output file could not be written."""


class Busy(FeedsError):
    """Another run is writing the same state database or output folder."""


class Cancelled(FeedsError):
    """A run was asked to stop (the daemon is shutting down) and did, writing nothing."""


class Fenced(FeedsError):
    """A worker of a cluster (several ``feeds run`` on one PostgreSQL state) no longer holds
    what allowed a write; the write was refused in its transaction."""


class LostLease(Fenced):
    """The lease on a source expired and another worker took it: the result was not stored."""


class LostLeadership(Fenced):
    """The generation term ended (another worker leads): nothing more is published under it."""
