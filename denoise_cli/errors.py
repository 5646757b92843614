"""Errors a user can act on.  The CLI prints them as one line ``dncli: error: ...``.

Library errors with their own classes (image, weights, kernel errors) are mapped to these
exit codes by the CLI; everything else unexpected is a bug and shows a traceback with --debug.
"""
from __future__ import annotations


class DncliError(Exception):
    """A runtime failure the user can fix (exit code 1)."""

    exit_code = 1


class UsageError(DncliError):
    """A bad option, option combination or argument (exit code 2)."""

    exit_code = 2
