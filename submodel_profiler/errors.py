"""Exceptions raised by submodel_profiler.

`UsageError` is what a user can fix (a bad flag, a missing file, a model that
cannot be read); the CLI turns it into a one-paragraph message and exit code 2.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input: an argument, a model path or a model the profiler cannot use."""
