"""Exceptions raised by submodel_profiler.

`UsageError` is what a user can fix (a bad flag, a missing file, a model that
cannot be read); the CLI turns it into a one-paragraph message and exit code 2.
"""

from __future__ import annotations

import os


class UsageError(ValueError):
    """Bad user input: an argument, a model path or a model the profiler cannot use."""


def check_output_folder(flag: str, path: str) -> None:
    """Raise UsageError unless the folder `path` would be written into exists."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{flag}: the directory {folder!r} does not exist. Received: {path!r}.")
