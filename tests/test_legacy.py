"""Keras 2 files (tf.keras 2.x / tf_keras), as researchers still have them: written here by
tf_keras itself, in a subprocess, with what tf_keras says about them (its predictions, TF's
profiler on its own graph, its layers). Those, formulas and TF's profiler on the Keras 3
application are the expectations; the tool's own output never is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from submodel_profiler import UsageError, profile_model
from submodel_profiler.loading import load_model

from conftest import assert_exact, run_cli, seed_tf_flops

WRITE_LEGACY = textwrap.dedent("""
    import json
    import sys

    import numpy as np
    import tensorflow as tf
    import tf_keras
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    folder = sys.argv[1]
    facts = {}


    def tf_profiler_flops(model, inputs):
        fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
        specs = [tf.TensorSpec((1, *x.shape[1:])) for x in inputs]
        graph = fn.get_concrete_function(*specs).graph
        options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation())
        options = options.with_empty_output().build()
        return model_analyzer.profile(graph, options=options).total_float_ops


    def save(model, name, inputs, count=False):
        model.save(f"{folder}/{name}.h5")
        outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        np.savez(f"{folder}/{name}.npz", *inputs, *outputs)
        facts[name] = {
            "inputs": len(inputs),
            "layers": [type(layer).__name__ for layer in model.layers],
        }
        if count:
            facts[name]["tf_profiler_flops"] = tf_profiler_flops(model, inputs)


    rng = np.random.default_rng(0)
    # TF ops on Keras tensors, layer names with '/', known (non-random) weights.
    x = tf_keras.Input((6,), name="features")
    d = tf_keras.layers.Dense(4, name="block/dense")(x)
    a = tf_keras.layers.ReLU(name="block/relu")((tf.nn.relu6(d) + 3.0) * 0.5)
    c = tf.concat([a[:, 1:3], 1.0 - a], axis=-1)
    s = tf.math.reduce_sum(c * x[..., :6], axis=1, keepdims=True)
    ops = tf_keras.Model(x, [tf_keras.layers.Dense(2, name="head/dense")(s), c])
    ops.set_weights([
        np.arange(24, dtype="float32").reshape(6, 4) / 10 - 1,
        np.array([0.1, -0.2, 0.3, -0.4], "float32"),
        np.array([[0.5, -1.5]], "float32"),
        np.array([0.25, 0.75], "float32"),
    ])
    save(ops, "ops", [np.linspace(-2, 2, 12, dtype="float32").reshape(2, 6)], count=True)
    x = tf_keras.Input((6,))
    tf_keras.Model(x, tf.nn.relu(tf_keras.layers.Dense(4)(x))).save(f"{folder}/op.keras")

    # tf_keras' own MobileNetV3Small: '/' in names, 56 TFOpLambda layers (the hard sigmoids).
    mnv3 = tf_keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))
    save(mnv3, "mnv3s", [rng.uniform(0, 255, (1, 224, 224, 3)).astype("float32")])

    # DepthwiseConv2D, saved with `groups` (Keras 3 refuses it); a Lambda layer.
    x = tf_keras.Input((8, 8, 3))
    y = tf_keras.layers.DepthwiseConv2D(3, name="dw")(x)
    dw = tf_keras.Model(x, tf_keras.layers.Conv2D(5, 1, name="pw")(y))
    save(dw, "dw", [rng.standard_normal((1, 8, 8, 3)).astype("float32")])

    # A nested model (names with '/', TF ops) called twice, then a Sequential head.
    i = tf_keras.Input((5,))
    h = tf_keras.layers.Dense(3, name="inner/dense")(i)
    inner = tf_keras.Model(i, tf.nn.sigmoid(h) * 2.0 - h[:, :1], name="inner/model")
    head = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)], name="head")
    a, b = tf_keras.Input((5,)), tf_keras.Input((5,))
    nested = tf_keras.Model([a, b], head(tf.add_n([inner(a), inner(b)]) / 2.0))
    save(nested, "nested", [rng.standard_normal((2, 5)).astype("float32") for _ in "ab"], True)
    x = tf_keras.Input((8,))
    y = tf_keras.layers.Lambda(lambda t: t * 2.0)(tf_keras.layers.Dense(4)(x))
    tf_keras.Model(x, y).save(folder + "/lambda.h5")
    with open(folder + "/facts.json", "w") as f:
        json.dump(facts, f)
""")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """(folder, facts): the files tf_keras wrote and what it said about them."""
    pytest.importorskip("tf_keras")  # a test extra: see pyproject.toml
    folder = tmp_path_factory.mktemp("legacy")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [sys.executable, "-c", WRITE_LEGACY, str(folder)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return folder, json.loads((folder / "facts.json").read_text())


def _tf_keras_outputs(legacy, name):
    """(inputs, outputs) of tf_keras' predictions for the file `name`."""
    folder, facts = legacy
    saved = np.load(folder / f"{name}.npz")
    arrays = [saved[f"arr_{k}"] for k in range(len(saved.files))]
    n = facts[name]["inputs"]
    return arrays[:n], arrays[n:]


def _assert_predicts_as_tf_keras(model, legacy, name, rtol=1e-6):
    inputs, expected = _tf_keras_outputs(legacy, name)
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6)


def _unnumbered(name: str) -> str:
    """A name without the `_N` tf_keras adds to make op layer names unique."""
    return re.sub(r"_\d+$", "", name)


def _edited(legacy, tmp_path, edit):
    """A copy of ops.h5 whose model config `edit(config)` changed."""
    folder, _ = legacy
    path = tmp_path / "edited.h5"
    path.write_bytes((folder / "ops.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return str(path)


def _op_layer(config, function):
    return next(ly for ly in config["config"]["layers"] if ly["config"].get("function") == function)


# --- TF ops on Keras tensors ---------------------------------------------------------------


def test_tf_ops_load_with_their_weights_and_compute_what_tf_keras_computes(legacy):
    model = load_model(str(legacy[0] / "ops.h5")).model
    _assert_predicts_as_tf_keras(model, legacy, "ops")


def test_tf_ops_profile_complete_and_exact_from_the_cli(legacy, tmp_path):
    folder, facts = legacy
    out = tmp_path / "r.json"
    result = run_cli(
        [str(folder / "ops.h5"), "--no-timing", "--format", "json", "--output", str(out)]
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["cross_check"]["flops_exact"]
    assert not [r["name"] for r in data["layers"] if r.get("error")]
    # TF's profiler on tf_keras' own graph of the same model: MatMul 2·6·4 + bias 4, ...
    assert data["totals"]["whole_graph_tf_flops"] == facts["ops"]["tf_profiler_flops"]
    assert sum(r["tf_flops"] for r in data["layers"]) == facts["ops"]["tf_profiler_flops"]
    rows = {r["name"]: r for r in data["layers"]}
    # The three ops on ReLU's only input path are its ghost ops, as Keras 3's would be.
    assert rows["block_relu"]["ghost_ops"] == [
        "tf.nn.relu6",
        "tf.__operators__.add",
        "tf.math.multiply",
    ]
    assert rows["block_dense"]["macs"] == 6 * 4 and rows["head_dense"]["macs"] == 1 * 2
    ops = {r["name"]: r["type"] for r in data["layers"] if r["kind"] == "op"}
    assert ops == {
        "tf.__operators__.getitem": "SlicingOpLambda",
        "tf.math.subtract": "TFOpLambda",
        "tf.concat": "TFOpLambda",
        "tf.__operators__.getitem_1": "SlicingOpLambda",
        "tf.math.multiply_1": "TFOpLambda",
        "tf.math.reduce_sum": "TFOpLambda",
    }


@pytest.mark.architecture
def test_tf_keras_mobilenet_v3_small_profiles_complete_and_exact(keras, legacy):
    import tensorflow as tf

    folder, facts = legacy
    model = load_model(str(folder / "mnv3s.h5")).model
    _assert_predicts_as_tf_keras(model, legacy, "mnv3s", rtol=1e-5)
    report = profile_model(model, timing=False)
    assert_exact(report)
    # Every tf_keras layer but the input is a row; every TFOpLambda is a ghost op of one.
    kinds = facts["mnv3s"]["layers"]
    assert len(report.layers) == len(kinds) - kinds.count("TFOpLambda") - 1
    assert not [r for r in report.layers if r.kind == "op"]
    # The Keras 3 application, traced the ordinary way. (TF's profiler counts nothing for
    # tf_keras' FusedBatchNormV3, so its count of tf_keras' graph is lower.)
    keras3 = keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))
    assert report.totals.whole_graph_tf_flops == seed_tf_flops(
        keras3, [tf.TensorSpec((1, 224, 224, 3))]
    )
    # The hard sigmoids, ReLU(6)(x + 3) * (1/6): 9 in squeeze-excite blocks, 19 in hard
    # swishes (Keras 3 writes those as one Activation("hard_swish") layer).
    gates = [r for r in report.layers if r.ghost_ops]
    assert len(gates) == kinds.count("TFOpLambda") // 2 == 28
    for row in gates:
        assert row.type == "ReLU"
        assert [_unnumbered(op) for op in row.ghost_ops] == [
            "tf.__operators__.add",
            "tf.math.multiply",
        ]
        elements = int(np.prod(row.output_shapes[0]))
        assert row.tf_flops == 2 * elements  # + 3 and * 1/6
        assert row.flops == 3 * elements  # and the Relu6 TF does not count


# --- what Keras 2 files needed before ------------------------------------------------------


def test_a_nested_model_called_twice_loads_and_profiles_exact(legacy):
    folder, facts = legacy
    model = load_model(str(folder / "nested.h5")).model
    _assert_predicts_as_tf_keras(model, legacy, "nested")
    report = profile_model(model, timing=False, expand_nested=True)
    assert_exact(report)
    assert report.totals.whole_graph_tf_flops == facts["nested"]["tf_profiler_flops"]
    # Each call's rows by path; tf_keras counts a nested model's construction as its node 0.
    labels = {_unnumbered(r.label) for r in report.layers}
    for call in ("inner_model", "inner_model[1]"):
        assert {f"{call}/inner_dense", f"{call}/tf.math.subtract"} <= labels


def test_depthwise_groups_are_repaired_and_counted(legacy):
    model = load_model(str(legacy[0] / "dw.h5")).model
    _assert_predicts_as_tf_keras(model, legacy, "dw", rtol=1e-5)
    report = profile_model(model, timing=False)
    assert_exact(report)
    macs = {r.name: r.macs for r in report.layers}
    assert macs == {"dw": 6 * 6 * 3 * 3 * 3, "pw": 6 * 6 * 3 * 5}  # H·W·C·k², H·W·C_in·C_out


def test_a_lambda_layer_needs_no_safe_mode(legacy):
    path = str(legacy[0] / "lambda.h5")
    with pytest.raises(UsageError, match="--no-safe-mode"):
        load_model(path)
    assert load_model(path, safe_mode=False).model.outputs[0].shape == (None, 4)


# --- refused, with what to do --------------------------------------------------------------


def _refusal(path, **kw) -> str:
    with pytest.raises(UsageError) as info:
        load_model(path, **kw)
    message = str(info.value)
    assert "\n" not in message  # one paragraph
    return message


def test_a_tf_function_this_tensorflow_lacks_is_refused_by_name(legacy, tmp_path):
    def edit(config):
        _op_layer(config, "math.reduce_sum")["config"]["function"] = "math.reduce_everything"

    message = _refusal(_edited(legacy, tmp_path, edit))
    assert "'tf.math.reduce_sum'" in message and "tf.math.reduce_everything" in message
    assert "rebuild the model with Keras 3" in message


def test_a_tf_function_that_writes_files_needs_no_safe_mode(legacy, tmp_path):
    def edit(config):
        _op_layer(config, "math.reduce_sum")["config"]["function"] = "io.write_file"

    message = _refusal(_edited(legacy, tmp_path, edit))
    assert "tf.io.write_file" in message and "--no-safe-mode" in message


def test_keras_2_op_layers_on_ragged_tensors_are_refused_by_name(legacy, tmp_path):
    def edit(config):
        _op_layer(config, "concat")["class_name"] = "ClassMethod"

    message = _refusal(_edited(legacy, tmp_path, edit))
    assert "ClassMethod" in message and "'tf.concat'" in message


def test_a_keras_2_dot_keras_file_is_refused_with_the_way_to_h5(legacy):
    message = _refusal(str(legacy[0] / "op.keras"))
    assert "Keras 2" in message and "model.save('model.h5')" in message
