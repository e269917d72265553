"""Exceptions for problems in the user's input (the CLI reports them in one line, exit 2)."""

from __future__ import annotations

__all__ = ["FormatError", "UnknownNameError"]


class FormatError(ValueError):
    """A file is missing, unreadable or not in the expected format; the message names the file."""


class UnknownNameError(KeyError):
    """An unknown model, scheme, detector or split name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
