"""Keep TensorFlow's Python-side chatter out of the user's output while we measure."""

from __future__ import annotations

import contextlib
import io


@contextlib.contextmanager
def quiet_tf():
    """Silence TF's Python logger, the profiler's deprecation notices and stdout for a block."""
    from tensorflow.python.util import deprecation

    was_printing = deprecation._PRINT_DEPRECATION_WARNINGS
    deprecation._PRINT_DEPRECATION_WARNINGS = False
    try:
        with tf_warnings_silenced(), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        deprecation._PRINT_DEPRECATION_WARNINGS = was_printing


@contextlib.contextmanager
def tf_warnings_silenced():
    """TF's Python logger at ERROR for a block: the profiler creates many tf.functions on
    purpose, and TF's "triggered tf.function retracing" notices would only mislead users."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up log lines kept off stderr.

    TF 2.21 writes "Could not find cuda drivers" and oneDNN notices through absl before its log
    level applies, so the process's stderr (file descriptor 2) points to the null device for
    the import; TF_CPP_MIN_LOG_LEVEL=3 (unless set already) silences later lines such as
    "failed call to cuInit". An import that fails restores stderr first and raises.
    """
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
