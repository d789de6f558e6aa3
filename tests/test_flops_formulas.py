"""Float-op counts against closed-form formulas (TF counts a multiply-add as 2 float ops)."""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model

from conftest import rows_by_label


def _profile(model, **kw):
    return profile_model(model, timing=False, **kw)


def test_conv2d_row_matches_formula(keras):
    # input (B, H, W, Cin); "same" padding keeps Hout = H, Wout = W.
    b, h, w, cin, cout, k = 2, 12, 10, 3, 5, 3
    x = inputs = keras.Input((h, w, cin))
    x = keras.layers.Conv2D(cout, k, padding="same", name="c")(x)
    report = _profile(keras.Model(inputs, x), batch_size=b)
    row = rows_by_label(report)["c"]
    conv = 2 * k * k * cin * cout * h * w * b
    bias = cout * h * w * b
    assert row.flops == conv + bias
    assert row.whole_graph_flops == conv + bias


def test_valid_strided_conv_uses_output_size(keras):
    # Hout = floor((H - K) / S) + 1 for "valid" padding.
    h, w, cin, cout, k, s = 15, 11, 4, 6, 3, 2
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    inputs = keras.Input((h, w, cin))
    x = keras.layers.Conv2D(cout, k, strides=s, use_bias=False, name="c")(inputs)
    report = _profile(keras.Model(inputs, x))
    assert rows_by_label(report)["c"].flops == 2 * k * k * cin * cout * ho * wo


def test_dense_row_matches_formula(keras):
    # input (B, in) @ kernel (in, out) + bias (out,)
    b, n_in, n_out = 3, 7, 5
    inputs = keras.Input((n_in,))
    x = keras.layers.Dense(n_out, name="d")(inputs)
    report = _profile(keras.Model(inputs, x), batch_size=b)
    assert rows_by_label(report)["d"].flops == b * (2 * n_in * n_out + n_out)


def test_depthwise_conv_matches_formula(keras):
    h, w, c, k = 8, 8, 6, 3
    inputs = keras.Input((h, w, c))
    x = keras.layers.DepthwiseConv2D(k, padding="same", use_bias=False, name="dw")(inputs)
    report = _profile(keras.Model(inputs, x))
    assert rows_by_label(report)["dw"].flops == 2 * k * k * c * h * w


def test_tiny_cnn_rows_sum_to_whole_graph(tiny_cnn):
    report = _profile(tiny_cnn)
    rows = rows_by_label(report)
    assert rows["conv"].flops == 2 * 9 * 3 * 8 * 16 * 16 + 8 * 16 * 16
    assert rows["dense"].flops == 2 * 8 * 4 + 4
    assert sum(r.flops for r in report.layers) == report.totals.whole_graph_flops
    assert report.totals.unattributed_flops == 0
    assert report.cross_check.flops_exact


def test_relu_is_one_float_op_per_element(tiny_cnn):
    report = _profile(tiny_cnn)
    relu = rows_by_label(report)["relu"]
    assert relu.flops == 16 * 16 * 8
    assert relu.tf_flops == 0
    assert relu.uncounted_ops == {}


def test_relu_is_uncounted_in_the_tf_convention(tiny_cnn):
    report = _profile(tiny_cnn, counting="tf")
    relu = rows_by_label(report)["relu"]
    assert relu.flops == 0
    assert relu.uncounted_ops == {"Relu": 1}
    assert report.cross_check.lower_bound_rows == ("relu",)
    assert relu.flop_per_s is None


@pytest.mark.parametrize("batch", [1, 4])
def test_flops_scale_with_batch(tiny_cnn, batch):
    one = _profile(tiny_cnn, batch_size=1)
    many = _profile(tiny_cnn, batch_size=batch)
    for a, b in zip(one.layers, many.layers):
        if a.name == "bn":
            # x * scale + offset: 2 float ops per element scale with the batch; the per-channel
            # scale/offset computation (a few ops per channel) does not.
            assert b.flops - a.flops == (batch - 1) * 2 * 16 * 16 * 8
        else:
            assert b.flops == batch * a.flops, a.name
