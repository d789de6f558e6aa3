"""Real keras.applications architectures (weights=None): rows must sum exactly to the whole graph.

The reference total is computed here independently: the model traced the ordinary way and
profiled with TF's float-op profiler, as one would without this tool.
"""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model

from conftest import assert_exact, seed_tf_flops

pytestmark = pytest.mark.architecture


@pytest.fixture(scope="module")
def mobilenet(keras):
    return keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))


def test_mobilenet_v3_small_rows_match_the_whole_graph(mobilenet):
    import tensorflow as tf

    expected = seed_tf_flops(mobilenet, [tf.TensorSpec((1, 224, 224, 3))])
    for counting in ("complete", "tf"):
        report = profile_model(mobilenet, timing=False, counting=counting)
        assert report.totals.whole_graph_tf_flops == expected
        assert sum(r.tf_flops for r in report.layers) == expected
        assert_exact(report)
    assert report.totals.flops == expected  # the tf convention is TF's profiler
    assert report.cross_check.uncounted_ops  # TF counts no Relu, Sigmoid, ...


def test_mobilenet_v3_se_gates_carry_their_ghost_ops(mobilenet):
    report = profile_model(mobilenet, timing=False)
    gates = [r for r in report.layers if r.ghost_ops]
    # One hard-sigmoid per squeeze-excite block; MobileNetV3Small has 9 of them.
    se_blocks = [ly for ly in mobilenet.layers if ly.name.endswith("squeeze_excite_mul")]
    assert len(gates) == len(se_blocks) > 0
    for row in gates:
        assert row.type == "ReLU"
        assert [op.split("_")[0] for op in row.ghost_ops] == ["add", "multiply"]
        channels = row.output_shapes[0][-1]
        assert row.tf_flops == 2 * channels  # + 3 and * 1/6 on a 1x1xC tensor
        assert row.flops == 3 * channels  # and the Relu6 TF does not count
    assert not [r for r in report.layers if r.kind == "op"]
