"""scripts/zoo.py on a representative subset of the zoo, through the script's own worker.

One vision application in its own process (the driver's path: worker, cache, page), and five
keras-hub backbones from the script's small configs in this process: encoder-only (BERT),
decoder-only with grouped-query attention (Llama), encoder-decoder (T5), a mixture of experts
(Mixtral), an RWKV-style recurrent block (RWKV-7) and a gated delta-net (Qwen 3.5's linear
attention), each at `--depth 1` and `--depth all`.
Each must profile complete and exact; the MACs of Llama's projections and Mixtral's experts
are checked against formulas written here, never the tool's own output.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ZOO_PATH = ROOT / "scripts" / "zoo.py"

# {backbone: the kind of model it stands for}
HUB_SUBSET = {
    "BertBackbone": "encoder-only",
    "LlamaBackbone": "decoder-only, grouped-query attention",
    "T5Backbone": "encoder-decoder",
    "MixtralBackbone": "mixture of experts",
    "RWKV7Backbone": "RWKV-style recurrent block",
    "Qwen3_5Backbone": "gated delta-net linear attention, a state-space-like recurrence",
}


@functools.cache
def zoo():
    """scripts/zoo.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("zoo", ZOO_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["zoo"] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


@functools.cache
def record(name: str, depth: str) -> dict:
    return zoo().profile_case(name, depth)


def assert_complete_and_exact(rec: dict) -> None:
    from submodel_profiler.counting import NON_ARITHMETIC_OPS

    assert rec["status"] == "exact", rec.get("error")
    assert rec["report_status"] == "complete"
    assert rec["counts_exact"]
    assert rec["error"] is None
    assert rec["failed_rows"] == rec["row_errors"] == rec["mismatched_rows"] == []
    assert "whole_graph" not in rec["method_errors"]
    assert rec["macs"] == rec["whole_graph_macs"] and rec["flops"] == rec["whole_graph_flops"]
    assert set(rec["uncounted_ops"]) & NON_ARITHMETIC_OPS == set()  # data movement is not listed


@pytest.mark.architecture
def test_an_application_through_the_driver_its_cache_and_the_page(tmp_path):
    z = zoo()
    case = z.Case("MobileNetV3Small", "applications")
    rec = z.run_worker(case, "1", tmp_path, timeout_s=300)  # a child process, as the driver runs
    assert_complete_and_exact(rec)
    assert rec["inputs"] == "32×32×3"  # the smallest input the application allows
    assert z.load_cached(tmp_path, case, "1") == rec

    page = tmp_path / "zoo.md"
    assert z.main(["--page-only", "--cache", str(tmp_path), "--page", str(page)]) == 0
    text = page.read_text()
    assert f"| MobileNetV3Small | 32×32×3 | 1 | exact | {rec['rows']:,} | {rec['macs']:,} |" in text
    assert "| keras.applications | 1 | 1 | 0 | 0 | 0 |" in text


@pytest.mark.architecture
@pytest.mark.parametrize("depth", ["1", "all"])
@pytest.mark.parametrize("name", list(HUB_SUBSET))
def test_a_backbone_profiles_complete_and_exact(name, depth):
    rec = record(name, depth)
    assert_complete_and_exact(rec)
    if depth == "all":  # expanding composite layers moves work between rows, never adds any
        shallow = record(name, "1")
        assert (rec["macs"], rec["flops"]) == (shallow["macs"], shallow["flops"])
        assert rec["rows"] > shallow["rows"]


def _rows_ending(rec: dict, suffix: str) -> list:
    return [macs for label, (_, macs) in rec["row_macs"].items() if label.endswith(suffix)]


@pytest.mark.architecture
def test_llama_grouped_query_projections_match_the_formula():
    config = zoo().HUB_CONFIGS["LlamaBackbone"]()
    s, h, layers = zoo().SEQ_LEN, config["hidden_dim"], config["num_layers"]
    heads, kv_heads, ff = config["num_query_heads"], config["num_key_value_heads"], 64
    head_dim = h // heads
    assert kv_heads < heads  # grouped-query: fewer key/value heads than query heads
    rec = record("LlamaBackbone", "all")
    expected = {
        "/self_attention/query": s * h * heads * head_dim,  # (s, h) · (h, heads, head_dim)
        "/self_attention/key": s * h * kv_heads * head_dim,
        "/self_attention/value": s * h * kv_heads * head_dim,
        "/self_attention/attention_output": s * heads * head_dim * h,
        "/feedforward_gate_dense": s * h * ff,
        "/feedforward_intermediate_dense": s * h * ff,
        "/feedforward_output_dense": s * ff * h,
    }
    assert config["intermediate_dim"] == ff
    for suffix, macs in expected.items():
        assert _rows_ending(rec, suffix) == [macs] * layers, suffix


@pytest.mark.architecture
def test_mixtral_experts_match_the_formula():
    config = zoo().HUB_CONFIGS["MixtralBackbone"]()
    s, h, m = zoo().SEQ_LEN, config["hidden_dim"], config["intermediate_dim"]
    experts, layers = config["num_experts"], config["num_layers"]
    rec = record("MixtralBackbone", "all")
    # Every expert runs on every token (keras-hub's batched experts), then routing weighs them:
    # gate and up (s, h) · (e, h, m), down (e, s, m) · (e, m, h).
    assert _rows_ending(rec, "/experts") == [experts * s * 3 * h * m] * layers
    assert _rows_ending(rec, "/sparse_feedforward_gate_dense") == [s * h * experts] * layers


def test_every_backbone_has_a_small_config_or_a_reason():
    z = zoo()
    pytest.importorskip("keras_hub")
    names = set(z.hub_backbone_names())
    assert names - set(z.HUB_CONFIGS) - set(z.HUB_CANNOT_BUILD) == set()
    assert set(z.HUB_CONFIGS) | set(z.HUB_CANNOT_BUILD) <= names  # no config for a lost class


def test_the_page_counts_statuses_and_escapes_errors():
    z = zoo()
    records = {
        ("applications", "A", "1"): {"status": "exact", "inputs": "32×32×3", "rows": 3, "macs": 9},
        ("keras_hub", "B", "all"): {"status": "failed", "error": "ValueError: a | b\nmore"},
        ("keras_hub", "C", "1"): {"status": "does not build", "error": "why"},
    }
    page = z.render_page(records, {"Keras": "3"})
    assert "| keras.applications | 1 | 1 | 0 | 0 | 0 |" in page
    assert "| keras-hub | all | 0 | 0 | 1 | 0 |" in page
    assert "| keras-hub | 1 | 0 | 0 | 0 | 1 |" in page
    assert "| A | 32×32×3 | 1 | exact | 3 | 9 |  |  |" in page
    assert "| B |  | all | failed |  |  |  | ValueError: a \\| b more |" in page
