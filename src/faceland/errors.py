"""Exceptions for problems in the user's input (the CLI reports them in one line, exit 2)."""

from __future__ import annotations

__all__ = ["FormatError", "UnknownNameError", "require_extra"]


class FormatError(ValueError):
    """A file is missing, unreadable or not in the expected format; the message names the file."""


class UnknownNameError(KeyError):
    """An unknown model, scheme, detector or split name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def require_extra(what: str, module: str = "torch", extra: str = "train") -> None:
    """Check that an optional dependency is installed before a feature that needs it runs.

    faceland's core install (``pip install faceland``) carries what inference needs; training,
    export and eager PyTorch inference need the ``train`` extra.

    Args:
        what: the feature, for the message (e.g. ``"faceland train"``).
        module: the module it needs.
        extra: the extra that installs it.

    Raises:
        ImportError: one line naming the feature, the missing module and the extra to install.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs {module}, which faceland's core install leaves out: "
                          f"pip install 'faceland[{extra}]'")
