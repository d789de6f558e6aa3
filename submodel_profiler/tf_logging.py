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
