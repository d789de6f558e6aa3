"""What the measurements ran on: versions, platform, device, thread settings."""

from __future__ import annotations

import platform
import sys

from submodel_profiler.report import Environment


def collect_environment() -> Environment:
    import keras
    import tensorflow as tf

    return Environment(
        python=platform.python_version() or sys.version.split()[0],
        tensorflow=tf.__version__,
        keras=keras.__version__,
        platform=platform.platform(),
        device=_device_name(tf),
        intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
    )


def _device_name(tf) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {_cpu_model()}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
