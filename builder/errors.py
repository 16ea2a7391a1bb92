"""Errors a user can act on.

Every failure caused by the user's inputs or environment is raised as a subclass of
:class:`FgbgError` whose message names the file and says what is wrong; the CLI prints it
as one line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

__all__ = ["ConfigMismatchError", "FgbgError", "InputError", "LockedError", "OutputError"]


class FgbgError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class InputError(FgbgError):
    """A background/foreground/mask input is missing, unreadable or unsuitable."""


class OutputError(FgbgError):
    """The output location cannot hold a dataset (a file, unwritable, ...)."""


class ConfigMismatchError(FgbgError):
    """The output already holds a dataset built from other inputs or settings."""


class LockedError(FgbgError):
    """Another builder is writing to the same dataset."""
