"""The zoo: every keras.applications architecture and every keras-hub backbone, profiled.

Usage:
    python scripts/zoo.py [--only NAME ...] [--rerun-failed] [--rerun] [--jobs N]
                          [--timeout SECONDS] [--page-only] [--cache DIR] [--page PATH]

Each (model, depth) runs in its own process (`--worker`), with random weights and nothing
downloaded: applications are built with `weights=None` at the smallest input each allows, and
keras-hub backbones from the small configs in `HUB_CONFIGS` (never from a preset). The counts
only, no timing: `profile_model(model, timing=False, depth=1 or "all")`. Each result is cached
as JSON under `build/zoo/`, so a later run profiles only what is missing (or what `--only`,
`--rerun-failed`, `--rerun` name) and `--page-only` rewrites `docs/zoo.md` from the cache.

Statuses: "exact" (every row counted, the rows equal the whole graph row by row and in sum),
"disagree" (some counts differ), "failed" (a row, a parent or the profile itself failed, or
the worker ran out of time) and "does not build" (the model cannot be built from its small
config; the reason is on the page).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "zoo"
PAGE = ROOT / "docs" / "zoo.md"
DEPTHS = ("1", "all")
TIMEOUT_S = 1200  # per (model, depth)
SEQ_LEN = 8  # the token sequence of every text input
STATUSES = ("exact", "disagree", "failed", "does not build")

# --- keras.applications: the smallest input each allows ---------------------------------------

APPLICATION_SIZE = 32  # keras.applications' own minimum for most architectures
APPLICATION_MIN_SIZES = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}


def application_size(name: str) -> int:
    return APPLICATION_MIN_SIZES.get(name, APPLICATION_SIZE)


# --- keras-hub: one small config per backbone ---------------------------------------------------

# Not architectures: the classes every backbone derives from.
HUB_BASE_CLASSES = ("Backbone", "FeaturePyramidBackbone")

IMAGE = (32, 32, 3)
TEXT = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)
TEXT_POS = dict(TEXT, max_sequence_length=32)
GQA = dict(
    vocabulary_size=64,
    num_layers=2,
    num_query_heads=4,
    num_key_value_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
)
MOE = dict(num_experts=4, top_k=2)


# ResNetBackbone requires 64 filters in the first stage (and its stem, for the shortcut).
def _resnet(filters=(64, 16, 16, 16)):
    from keras_hub.models import ResNetBackbone

    return ResNetBackbone(**_resnet_kwargs(filters, image_shape=(None, None, 3)))


def _resnet_kwargs(filters=(64, 16, 16, 16), image_shape=IMAGE) -> dict:
    return dict(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=list(filters),
        stackwise_num_blocks=[1] * len(filters),
        stackwise_num_strides=[1] + [2] * (len(filters) - 1),
        block_type="basic_block",
        image_shape=image_shape,
    )


def _mit(image_shape=IMAGE):
    from keras_hub.models import MiTBackbone

    return MiTBackbone(**_mit_kwargs(image_shape))


def _mit_kwargs(image_shape=IMAGE) -> dict:
    return dict(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        image_shape=image_shape,
        hidden_dims=[16, 32],
    )


def _hgnetv2_kwargs(out_features=None) -> dict:
    # stage filters: [in, mid, out, blocks, layers per block, kernel]
    return dict(
        depths=[1, 1, 1, 1],
        embedding_size=8,
        hidden_sizes=[16, 32, 48, 64],
        stem_channels=[3, 8, 8],
        hidden_act="relu",
        use_learnable_affine_block=True,
        stackwise_stage_filters=[
            [8, 8, 16, 1, 2, 3],
            [16, 16, 32, 1, 2, 3],
            [32, 16, 48, 1, 2, 3],
            [48, 16, 64, 1, 2, 3],
        ],
        apply_downsample=[False, True, True, True],
        use_lightweight_conv_block=[False, False, True, True],
        image_shape=IMAGE,
        out_features=out_features,
    )


def _vit_kwargs(image_shape=IMAGE, patch_size=8) -> dict:
    return dict(
        image_shape=image_shape,
        patch_size=patch_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
    )


def _clip_like(vision_cls, text_cls, **extra) -> dict:
    vision = vision_cls(8, 32, 2, 2, 64, image_shape=IMAGE, name="vision_encoder")
    text = text_cls(64, 32, 32, 2, 2, 64, max_sequence_length=SEQ_LEN, name="text_encoder")
    return dict(vision_encoder=vision, text_encoder=text, **extra)


def _clip() -> dict:
    from keras_hub.src.models.clip.clip_text_encoder import CLIPTextEncoder
    from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

    return _clip_like(CLIPVisionEncoder, CLIPTextEncoder, projection_dim=16)


def _metaclip2() -> dict:
    from keras_hub.src.models.metaclip_2.metaclip_2_text_encoder import MetaCLIP2TextEncoder
    from keras_hub.src.models.metaclip_2.metaclip_2_vision_encoder import (
        MetaCLIP2VisionEncoder,
    )

    return _clip_like(MetaCLIP2VisionEncoder, MetaCLIP2TextEncoder, projection_dim=16)


def _siglip() -> dict:
    from keras_hub.src.models.siglip.siglip_text_encoder import SigLIPTextEncoder
    from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

    return _clip_like(SigLIPVisionEncoder, SigLIPTextEncoder)


def _blip2() -> dict:
    from keras_hub.src.models.blip2.blip2_custom_opt import BLIP2CustomOPT
    from keras_hub.src.models.blip2.blip2_qformer import BLIP2QFormer
    from keras_hub.src.models.blip2.blip2_vision_encoder import BLIP2VisionEncoder

    vision = BLIP2VisionEncoder(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        use_patch_bias=True,
        use_class_token=True,
        use_mha_bias=True,
        use_mlp_bias=True,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        initializer_range=0.02,
    )
    qformer = BLIP2QFormer(
        num_query_tokens=4,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        vision_dim=32,
        cross_attention_frequency=1,
        dropout=0.0,
        layer_norm_epsilon=1e-6,
    )
    language_model = BLIP2CustomOPT(
        vocabulary_size=64,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        num_query_tokens=4,
        dropout=0.0,
        max_sequence_length=32,
        qformer_hidden_dim=32,
    )
    return dict(vision_encoder=vision, qformer=qformer, language_model=language_model)


def _sam() -> dict:
    from keras_hub.models import ViTDetBackbone
    from keras_hub.src.models.sam.sam_mask_decoder import SAMMaskDecoder
    from keras_hub.src.models.sam.sam_prompt_encoder import SAMPromptEncoder

    image_encoder = ViTDetBackbone(
        hidden_size=16,
        num_layers=2,
        intermediate_dim=32,
        num_heads=2,
        global_attention_layer_indices=[1],
        patch_size=4,
        num_output_channels=8,
        window_size=2,
        image_shape=IMAGE,
    )
    prompt_encoder = SAMPromptEncoder(
        hidden_size=8, image_embedding_size=(8, 8), input_image_size=(32, 32), mask_in_channels=4
    )
    mask_decoder = SAMMaskDecoder(
        hidden_size=8,
        num_layers=2,
        intermediate_dim=16,
        num_heads=2,
        embedding_dim=8,
        num_multimask_outputs=3,
        iou_head_depth=2,
        iou_head_hidden_dim=8,
    )
    return dict(
        image_encoder=image_encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder
    )


def _sam3() -> dict:
    from keras_hub.src.models.sam3.sam3_detr_decoder import SAM3DetrDecoder
    from keras_hub.src.models.sam3.sam3_detr_encoder import SAM3DetrEncoder
    from keras_hub.src.models.sam3.sam3_geometry_encoder import SAM3GeometryEncoder
    from keras_hub.src.models.sam3.sam3_mask_decoder import SAM3MaskDecoder
    from keras_hub.src.models.sam3.sam3_text_encoder import SAM3TextEncoder
    from keras_hub.src.models.sam3.sam3_vision_encoder import SAM3VisionEncoder

    image_shape, patch = (56, 56, 3), 14
    block = dict(hidden_dim=32, intermediate_dim=64, num_heads=2)
    return dict(
        vision_encoder=SAM3VisionEncoder(
            image_shape=image_shape,
            patch_size=patch,
            num_layers=2,
            fpn_hidden_dim=32,
            fpn_scale_factors=[4.0, 2.0, 1.0, 0.5],
            pretrain_image_shape=image_shape,
            window_size=2,
            global_attn_indexes=[1],
            **block,
        ),
        text_encoder=SAM3TextEncoder(
            vocabulary_size=64, embedding_dim=32, num_layers=2, max_sequence_length=SEQ_LEN, **block
        ),
        geometry_encoder=SAM3GeometryEncoder(num_layers=1, roi_size=7, **block),
        detr_encoder=SAM3DetrEncoder(num_layers=1, **block),
        detr_decoder=SAM3DetrDecoder(
            image_shape=image_shape, patch_size=patch, num_layers=1, num_queries=8, **block
        ),
        mask_decoder=SAM3MaskDecoder(num_upsampling_stages=3, hidden_dim=32, num_heads=2),
    )


def _vae():
    from keras_hub.src.models.vae.vae_backbone import VAEBackbone

    # 32 filters: the group norms have 32 groups
    return VAEBackbone([32, 32], [1, 1], [32, 32], [1, 1], sampler_method="mode", name="vae")


def _stable_diffusion_3() -> dict:
    from keras_hub.src.models.clip.clip_text_encoder import CLIPTextEncoder

    return dict(
        mmdit_patch_size=2,
        mmdit_hidden_dim=32,
        mmdit_num_layers=2,
        mmdit_num_heads=2,
        mmdit_position_size=32,
        mmdit_qk_norm=None,
        mmdit_dual_attention_indices=None,
        vae=_vae(),
        clip_l=CLIPTextEncoder(64, 32, 32, 2, 2, 64, "quick_gelu", -2, name="clip_l"),
        clip_g=CLIPTextEncoder(64, 32, 32, 2, 2, 64, "gelu", -2, name="clip_g"),
        image_shape=IMAGE,
    )


def _dfine() -> dict:
    from keras_hub.models import HGNetV2Backbone

    return dict(
        backbone=HGNetV2Backbone(**_hgnetv2_kwargs(out_features=["stage3", "stage4"])),
        decoder_in_channels=[32, 32],
        encoder_hidden_dim=32,
        num_labels=4,
        num_denoising=0,
        learn_initial_query=False,
        num_queries=4,  # at most the 5 anchors of a 32×32 image at strides 16 and 32
        anchor_image_size=IMAGE[:2],
        feat_strides=[16, 32],
        num_feature_levels=2,
        hidden_dim=32,
        encoder_in_channels=[48, 64],
        encode_proj_layers=[1],
        num_attention_heads=2,
        encoder_ffn_dim=64,
        num_encoder_layers=1,
        hidden_expansion=0.5,
        depth_multiplier=0.5,
        eval_idx=-1,
        num_decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        decoder_n_points=[2, 2],
        lqe_hidden_dim=16,
        num_lqe_layers=2,
        image_shape=IMAGE,
        seed=0,
    )


def _depth_anything() -> dict:
    from keras_hub.models import DINOV2Backbone

    encoder = DINOV2Backbone(
        patch_size=8,
        num_layers=4,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        image_shape=(64, 64, 3),  # 8×8 patches: the 0.5 reassemble factor leaves 4×4
        position_embedding_shape=(64, 64, 3),
        apply_layernorm=True,
        name="image_encoder",
    )
    return dict(
        image_encoder=encoder,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_dims=[8, 16, 32, 64],
        fusion_hidden_dim=32,
        head_hidden_dim=8,
        head_in_index=-1,
        feature_keys=["stage1", "stage2", "stage3", "stage4"],
    )


def _parseq() -> dict:
    from keras_hub.models import ViTBackbone

    encoder = ViTBackbone(
        **_vit_kwargs(image_shape=(16, 32, 3), patch_size=(4, 8)),
        use_class_token=False,
        name="image_encoder",
    )
    return dict(
        image_encoder=encoder,
        vocabulary_size=16,
        max_label_length=SEQ_LEN,
        decoder_hidden_dim=32,
        num_decoder_layers=1,
        num_decoder_heads=2,
        decoder_mlp_dim=64,
        dropout_rate=0.0,
        attention_dropout=0.0,
    )


def _mobilenet() -> dict:
    return dict(
        stackwise_expansion=[[16, 24], [48]],
        stackwise_num_blocks=[2, 1],
        stackwise_num_filters=[[8, 8], [16]],
        stackwise_kernel_size=[[3, 3], [5]],
        stackwise_num_strides=[[2, 1], [2]],
        stackwise_se_ratio=[[None, None], [0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish"]],
        stackwise_padding=[[1, 1], [2]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        squeeze_and_excite=0.5,
        image_shape=IMAGE,
    )


def _mobilenetv5() -> dict:
    def per_block(*values):  # stage 1: one block, stage 2: two
        return [[values[0]], [values[1], values[1]]]

    return dict(
        stackwise_block_types=per_block("er", "uir"),
        stackwise_num_blocks=[1, 2],
        stackwise_num_filters=per_block(16, 24),
        stackwise_strides=[[2], [2, 1]],
        stackwise_act_layers=per_block("relu", "relu"),
        stackwise_exp_ratios=per_block(4.0, 4.0),
        stackwise_se_ratios=per_block(0.0, 0.0),
        stackwise_dw_kernel_sizes=per_block(0, 3),
        stackwise_dw_start_kernel_sizes=per_block(0, 0),
        stackwise_dw_end_kernel_sizes=per_block(0, 0),
        stackwise_exp_kernel_sizes=per_block(3, 0),
        stackwise_pw_kernel_sizes=per_block(1, 0),
        stackwise_num_heads=per_block(0, 0),
        stackwise_key_dims=per_block(0, 0),
        stackwise_value_dims=per_block(0, 0),
        stackwise_kv_strides=per_block(0, 0),
        stackwise_use_cpe=per_block(False, False),
        image_shape=IMAGE,
        stem_size=8,
        num_features=32,
        use_msfa=False,
    )


def _efficientnet() -> dict:
    return dict(
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[16, 16],
        stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"],
        stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False],
        width_coefficient=1.0,
        depth_coefficient=1.0,
        input_shape=IMAGE,
        num_features=64,
    )


def _gemma3n() -> dict:
    return dict(
        text_vocab_size=64,
        text_hidden_size=32,
        num_hidden_layers=2,
        pad_token_id=0,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=[64, 64],
        hidden_activation="gelu_approximate",
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=4,
        rope_theta=10000.0,
        max_position_embeddings=32,
        vocab_size_per_layer_input=64,
        hidden_size_per_layer_input=4,
        altup_num_inputs=2,
        laurel_rank=2,
    )


def _qwen3_5(**extra) -> dict:
    return dict(
        vocabulary_size=64,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        hidden_dim=32,
        layer_types=["linear_attention", "full_attention"],
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
        linear_conv_kernel_dim=4,
        **extra,
    )


def _smollm() -> dict:
    return dict(
        vocabulary_size=64,
        hidden_dim=32,
        intermediate_dim=64,
        num_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        attention_bias=False,
        attention_dropout=0.0,
        rope_layer_enabled_list=[True, True],
        layer_types=["attention", "attention"],
        mlp_bias=False,
        layer_norm_epsilon=1e-5,
        max_position_embeddings=32,
        rope_theta=10000.0,
        partial_rotary_factor=1.0,
    )


def _t5gemma(**extra) -> dict:
    def side(prefix):
        return {
            f"{prefix}_hidden_dim": 32,
            f"{prefix}_intermediate_dim": 64,
            f"{prefix}_num_layers": 2,
            f"{prefix}_num_attention_heads": 4,
            f"{prefix}_num_key_value_heads": 2,
            f"{prefix}_head_dim": 8,
            f"{prefix}_layer_types": ["sliding_attention", "full_attention"],
        }

    return dict(
        vocabulary_size=64,
        **side("encoder"),
        **side("decoder"),
        sliding_window=4,
        cross_attention_hidden_size=32,
        **extra,
    )


def _flux() -> dict:
    return dict(
        input_channels=16,
        hidden_size=32,
        mlp_ratio=2.0,
        num_heads=2,
        depth=1,
        depth_single_blocks=1,
        axes_dim=[4, 6, 6],  # sums to the head dim, 32 / 2
        theta=10_000,
        use_bias=True,
        guidance_embed=False,
        image_shape=(SEQ_LEN, 16),
        text_shape=(SEQ_LEN, 16),
        image_ids_shape=(SEQ_LEN, 3),
        text_ids_shape=(SEQ_LEN, 3),
        y_shape=(16,),
    )


def _kw(**kwargs):
    return lambda: kwargs


# {backbone class name: () -> its constructor's keyword arguments}. Text models get SEQ_LEN
# tokens; images are 32×32×3 unless the config says otherwise.
HUB_CONFIGS = {
    "AlbertBackbone": _kw(**TEXT_POS, embedding_dim=16),
    "BASNetBackbone": lambda: dict(
        image_encoder=_resnet(), num_classes=1, image_shape=IMAGE
    ),  # projection_filters: its default 64, the ResNet blocks' width
    "BLIP2Backbone": _blip2,
    "BartBackbone": _kw(**TEXT_POS),
    "BertBackbone": _kw(**TEXT_POS),
    "BloomBackbone": _kw(**TEXT),
    "CLIPBackbone": _clip,
    "CSPNetBackbone": _kw(
        stem_filters=16,
        stem_kernel_size=3,
        stem_strides=1,
        stackwise_strides=2,
        stackwise_depth=[1, 1],
        stackwise_num_filters=[16, 32],
        block_type="dark_block",
        stage_type="csp",
        down_growth=True,
        bottle_ratio=(0.5, 1.0),
        block_ratio=(1.0, 0.5),
        expand_ratio=(2.0, 1.0),
        stem_padding="same",
        image_shape=IMAGE,
    ),
    "DFineBackbone": _dfine,
    "DINOV2Backbone": _kw(
        patch_size=8,
        num_layers=2,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        image_shape=IMAGE,
        position_embedding_shape=IMAGE,
    ),
    "DINOV3Backbone": _kw(
        patch_size=8,
        num_layers=2,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        image_shape=IMAGE,
    ),
    "DebertaV3Backbone": _kw(**TEXT_POS, bucket_size=8),
    "DeepLabV3Backbone": lambda: dict(
        image_encoder=_resnet(filters=(64, 16, 16)),
        spatial_pyramid_pooling_key="P4",
        low_level_feature_key="P2",
        upsampling_size=4,
        dilation_rates=[2, 4],
        projection_filters=8,
        image_shape=IMAGE,
    ),
    "DeiTBackbone": _kw(
        image_shape=IMAGE,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
    ),
    "DenseNetBackbone": _kw(stackwise_num_repeats=[1, 1], image_shape=IMAGE, growth_rate=8),
    "DepthAnythingBackbone": _depth_anything,
    "DistilBertBackbone": _kw(**TEXT_POS),
    "ESM2Backbone": _kw(**TEXT_POS),
    "ESMBackbone": _kw(**TEXT_POS),
    "EdRecBackbone": _kw(
        vocab_size=64,
        num_layers_enc=2,
        num_layers_dec=2,
        hidden_dim=32,
        intermediate_dim=64,
        num_heads=2,
    ),
    "EfficientNetBackbone": _efficientnet,
    "ElectraBackbone": _kw(
        vocab_size=64,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        embedding_dim=16,
        intermediate_dim=64,
        max_sequence_length=32,
    ),
    "FNetBackbone": _kw(
        vocabulary_size=64, num_layers=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=32
    ),
    "FalconBackbone": _kw(
        vocabulary_size=64, num_layers=2, num_attention_heads=2, hidden_dim=32, intermediate_dim=64
    ),
    "FluxBackbone": _flux,
    "GPT2Backbone": _kw(**TEXT_POS),
    "GPTNeoXBackbone": _kw(**TEXT_POS),
    "Gemma3Backbone": _kw(**GQA, head_dim=8, image_size=16),
    "Gemma3nBackbone": _gemma3n,
    "Gemma4Backbone": _kw(**GQA, head_dim=8, image_size=16, sliding_window_size=4),
    "GemmaBackbone": _kw(**GQA, head_dim=8),
    "GptOssBackbone": _kw(**GQA, **MOE, head_dim=8, sliding_window=4),
    "HGNetV2Backbone": _hgnetv2_kwargs,
    "Llama3Backbone": _kw(**GQA),
    "LlamaBackbone": _kw(**GQA),
    "MetaCLIP2Backbone": _metaclip2,
    "MiTBackbone": _mit_kwargs,
    "MistralBackbone": _kw(**GQA, sliding_window=4),
    "MixtralBackbone": _kw(**GQA, **MOE, sliding_window=4),
    "MobileNetBackbone": _mobilenet,
    "MobileNetV5Backbone": _mobilenetv5,
    "MoonshineBackbone": _kw(
        vocabulary_size=64,
        filter_dim=32,
        encoder_num_layers=2,
        decoder_num_layers=2,
        hidden_dim=32,
        intermediate_dim=64,
        encoder_num_heads=2,
        decoder_num_heads=2,
    ),
    "OPTBackbone": _kw(**TEXT_POS),
    "PARSeqBackbone": _parseq,
    "PaliGemmaBackbone": _kw(
        **GQA,
        head_dim=8,
        image_size=16,
        vit_patch_size=4,
        vit_num_heads=2,
        vit_hidden_dim=16,
        vit_num_layers=1,
        vit_intermediate_dim=32,
    ),
    "Phi3Backbone": _kw(**GQA, max_sequence_length=32, pretraining_sequence_length=32),
    "Qwen2Backbone": _kw(**GQA),
    "Qwen3Backbone": _kw(**GQA, head_dim=8),
    "Qwen3MoeBackbone": _kw(**GQA, **MOE, moe_intermediate_dim=32, head_dim=8),
    "Qwen3_5Backbone": lambda: _qwen3_5(intermediate_dim=64),
    "Qwen3_5MoeBackbone": lambda: _qwen3_5(
        **MOE, moe_intermediate_dim=32, shared_expert_intermediate_size=32
    ),
    "QwenBackbone": _kw(**GQA),
    "QwenMoeBackbone": _kw(
        **GQA, **MOE, moe_intermediate_dim=32, shared_expert_intermediate_dim=32
    ),
    "RWKV7Backbone": _kw(
        hidden_size=32,
        head_size=16,
        num_layers=2,
        vocabulary_size=64,
        intermediate_dim=64,
        gate_lora=8,
        mv_lora=8,
        aaa_lora=8,
        decay_lora=8,
    ),
    "ResNetBackbone": _resnet_kwargs,
    "RetinaNetBackbone": lambda: dict(
        image_encoder=_resnet(), min_level=3, max_level=5, use_p5=False, image_shape=IMAGE
    ),
    "RobertaBackbone": _kw(**TEXT_POS),
    "RoformerV2Backbone": _kw(**TEXT, head_size=16),
    "SAM3PromptableConceptBackbone": _sam3,
    "SAMBackbone": _sam,
    "SegFormerBackbone": lambda: dict(image_encoder=_mit(), projection_filters=16),
    "SigLIPBackbone": _siglip,
    "SmolLM3Backbone": _smollm,
    "SmolLMBackbone": _smollm,
    "StableDiffusion3Backbone": _stable_diffusion_3,
    "SwinTransformerBackbone": _kw(
        image_shape=IMAGE,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
        patch_size=4,
    ),
    "T5Backbone": _kw(**TEXT, key_value_dim=16),
    "T5Gemma2Backbone": _t5gemma,
    "T5GemmaBackbone": _t5gemma,
    "VGGBackbone": _kw(
        stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16], image_shape=IMAGE
    ),
    "ViTBackbone": lambda: _vit_kwargs(),
    "ViTDetBackbone": _kw(
        hidden_size=32,
        num_layers=2,
        intermediate_dim=64,
        num_heads=2,
        global_attention_layer_indices=[1],
        image_shape=IMAGE,
        patch_size=8,
        num_output_channels=16,
        window_size=2,
    ),
    "VideoPrismBackbone": _kw(
        num_frames=2,
        patch_size=4,
        hidden_dim=16,
        intermediate_dim=32,
        num_heads=2,
        num_spatial_layers=1,
        num_temporal_layers=1,
        num_auxiliary_layers=1,
        image_shape=(16, 16, 3),
    ),
    "WhisperBackbone": _kw(
        **TEXT, num_mels=8, max_encoder_sequence_length=32, max_decoder_sequence_length=32
    ),
    "XLMRobertaBackbone": _kw(**TEXT_POS),
    "XLNetBackbone": _kw(**TEXT),
    "XceptionBackbone": _kw(
        stackwise_conv_filters=[[8, 16], [32, 32]],
        stackwise_pooling=[False, True],
        image_shape=IMAGE,
    ),
}

# Inputs with free dims that SEQ_LEN does not fill: {backbone: {input name: per-sample shape}}.
HUB_INPUT_SHAPES = {
    # 2048 audio samples: the encoder's convolutions (kernels 127, 7, 3, strides 64, 3, 2)
    # leave 30, 8, then 3 steps
    "MoonshineBackbone": {"encoder_input_values": (2048, 1), "encoder_padding_mask": (2048,)},
    # one point, one box and one mask prompt (4× the image embedding's 8×8)
    "SAMBackbone": {"points": (1, 2), "labels": (1,), "boxes": (1, 2, 2), "masks": (1, 32, 32, 1)},
}

# What is done to a backbone once built, as keras-hub's own tasks do, and why (on the page).
HUB_PREPARE = {
    "StableDiffusion3Backbone": (
        lambda model: model.configure_scheduler(2),
        "`configure_scheduler(2)` is called before profiling, as keras-hub's text-to-image "
        "task does before generating: otherwise its scheduler derives its sigmas from the "
        "`num_steps` input on its first call, which fails in a graph trace (a symbolic "
        "tensor used as a Python bool), with this tool or with `tf.function` alone.",
    ),
}

# Backbones that cannot be built from a small config, and why.
HUB_CANNOT_BUILD: dict[str, str] = {}


# --- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One model of the zoo."""

    name: str  # the constructor: "MobileNetV3Small", "BertBackbone"
    family: str  # "applications" or "keras_hub"


def application_cases() -> list[Case]:
    from submodel_profiler.loading import application_names

    return [Case(name, "applications") for name in application_names()]


def hub_backbone_names() -> list[str]:
    """Every `keras_hub.models.*Backbone` class of the installed keras-hub, base classes aside."""
    import keras_hub

    names = []
    for name in dir(keras_hub.models):
        cls = getattr(keras_hub.models, name)
        if (
            name.endswith("Backbone")
            and isinstance(cls, type)
            and issubclass(cls, keras_hub.models.Backbone)
            and name not in HUB_BASE_CLASSES
        ):
            names.append(name)
    return sorted(names)


def hub_cases() -> list[Case]:
    return [Case(name, "keras_hub") for name in hub_backbone_names()]


def all_cases() -> list[Case]:
    return application_cases() + hub_cases()


def find_case(name: str) -> Case:
    return Case(name, "keras_hub" if name.endswith("Backbone") else "applications")


# --- the worker: one model, one depth, in this process ------------------------------------------


class CannotBuild(Exception):
    """The model cannot be built from its small config."""


def build(case: Case):
    """The model and the `profile_model` keywords its inputs need.

    Raises:
        CannotBuild: with the reason.
    """
    try:
        if case.family == "applications":
            import keras

            size = application_size(case.name)
            model = getattr(keras.applications, case.name)(
                weights=None, input_shape=(size, size, 3)
            )
            return model, {}
        return _build_hub(case.name)
    except CannotBuild:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to build is this status
        raise CannotBuild(first_line(e)) from e


def _build_hub(name: str):
    import keras_hub

    if name in HUB_CANNOT_BUILD:
        raise CannotBuild(HUB_CANNOT_BUILD[name])
    if name not in HUB_CONFIGS:
        raise CannotBuild("no small config in scripts/zoo.py's HUB_CONFIGS")
    model = getattr(keras_hub.models, name)(**HUB_CONFIGS[name]())
    if name in HUB_PREPARE:
        HUB_PREPARE[name][0](model)
    return model, _hub_input_kwargs(name, model)


def _hub_input_kwargs(name: str, model) -> dict:
    from submodel_profiler.specs import input_name, is_sequence_input

    shapes = HUB_INPUT_SHAPES.get(name, {})
    needs_seq = any(is_sequence_input(t) and input_name(t) not in shapes for t in model.inputs)
    kwargs = {"input_shapes": dict(shapes)} if shapes else {}
    if needs_seq:
        kwargs["seq_len"] = SEQ_LEN
    return kwargs


def describe_inputs(model) -> str:
    """The model's inputs, batch left out, "?" where a dim is free: "32×32×3", "token_ids ?"."""
    shapes = [(getattr(t, "name", "?"), tuple(t.shape[1:])) for t in model.inputs]
    if len(shapes) == 1:
        return _dims(shapes[0][1])
    return ", ".join(f"{n} {_dims(s)}" for n, s in shapes)


def _dims(shape) -> str:
    return "×".join("?" if d is None else str(d) for d in shape) or "scalar"


def first_line(error) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return (text.strip().splitlines() or [""])[0]


def profile_case(name: str, depth: str) -> dict:
    """Build `name`, profile it at `depth` ("1" or "all") counting only, and summarize."""
    from submodel_profiler import profile_model

    case = find_case(name)
    record = {"name": name, "family": case.family, "depth": depth}
    start = time.perf_counter()
    try:
        model, kwargs = build(case)
    except CannotBuild as e:
        return {**record, "status": "does not build", "error": str(e)}
    record["inputs"] = describe_inputs(model)
    try:
        report = profile_model(model, timing=False, depth=1 if depth == "1" else "all", **kwargs)
    except Exception as e:  # noqa: BLE001 - the record says what failed
        record.update(status="failed", error=first_line(e), error_type=type(e).__name__)
    else:
        record.update(summarize(report), inputs=_traced_inputs(report))
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def _traced_inputs(report) -> str:
    """The inputs as profiled, batch left out: "32×32×3", "padding_mask 8, token_ids 8"."""
    inputs = report.model.inputs
    if len(inputs) == 1:
        return _dims(inputs[0].shape[1:])
    return ", ".join(f"{t.name} {_dims(t.shape[1:])}" for t in inputs)


def summarize(report) -> dict:
    """The page's fields of a Report, plus what a failure inventory needs."""
    cc, t = report.cross_check, report.totals
    errors = [(r.label, r.error) for r in report.layers if r.error]
    errors += [(p.label + "/", p.error) for p in report.parents if p.error]
    status = classify(report)
    error = None
    if status == "failed":
        error = errors[0][1] if errors else cc.method_errors.get("whole_graph", report.status)
        error = first_line(error)
    elif status == "disagree":
        error = "counts differ: " + ", ".join(cc.mismatched_rows[:5] or ("the sums",))
    return {
        "status": status,
        "error": error,
        "report_status": report.status,
        "counts_exact": cc.counts_exact,
        "rows": len(report.layers),
        "macs": t.macs,
        "flops": t.flops,
        "whole_graph_macs": t.whole_graph_macs,
        "whole_graph_flops": t.whole_graph_flops,
        "uncounted_ops": dict(cc.uncounted_ops),
        "mismatched_rows": list(cc.mismatched_rows),
        "failed_rows": list(cc.failed_rows),
        "row_errors": [f"{label}: {first_line(e)}" for label, e in errors],
        "method_errors": {k: first_line(v) for k, v in cc.method_errors.items()},
        "row_macs": {r.label: [r.type, r.macs] for r in report.layers},
    }


def classify(report) -> str:
    """ "disagree" where counts that exist differ, "failed" where something could not be
    counted, else "exact" (every row counted and equal to the whole graph)."""
    cc = report.cross_check
    if cc.mismatched_rows:
        return "disagree"
    if report.status != "complete" or cc.failed_rows or any(r.error for r in report.layers):
        return "failed"
    if any(p.error for p in report.parents) or "whole_graph" in cc.method_errors:
        return "failed"
    return "exact" if cc.counts_exact else "disagree"


# --- the driver: one process per (model, depth), cached -----------------------------------------


def cache_path(cache: Path, case: Case, depth: str) -> Path:
    return cache / case.family / f"{case.name}.depth-{depth}.json"


def run_worker(case: Case, depth: str, cache: Path, timeout_s: float) -> dict:
    """`--worker` in a child process; its record, also written to the cache."""
    path = cache_path(cache, case, depth)
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, __file__, "--worker", case.name, "--depth", depth, "--out", str(path)]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        record = {"status": "failed", "error": f"timed out after {timeout_s:.0f} s"}
    else:
        if done.returncode == 0 and path.exists():
            return json.loads(path.read_text())
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        record = {"status": "failed", "error": f"worker exit {done.returncode}: {tail[0]}"}
    record = {"name": case.name, "family": case.family, "depth": depth, **record}
    record["seconds"] = round(time.perf_counter() - start, 1)
    path.write_text(json.dumps(record, indent=1))
    return record


def load_cached(cache: Path, case: Case, depth: str) -> dict | None:
    path = cache_path(cache, case, depth)
    return json.loads(path.read_text()) if path.exists() else None


def pending(cases, cache: Path, rerun: bool, rerun_failed: bool) -> list[tuple[Case, str]]:
    todo = []
    for case in cases:
        for depth in DEPTHS:
            cached = None if rerun else load_cached(cache, case, depth)
            if cached is None or (rerun_failed and cached["status"] != "exact"):
                todo.append((case, depth))
    return todo


def run_all(todo, cache: Path, jobs: int, timeout_s: float) -> None:
    def one(item):
        case, depth = item
        record = run_worker(case, depth, cache, timeout_s)
        line = f"{case.name} depth {depth}: {record['status']} ({record.get('seconds', '?')} s)"
        if record.get("error"):
            line += f": {record['error'][:160]}"
        print(line, flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, todo))


# --- the page -----------------------------------------------------------------------------------


def versions() -> dict:
    import keras
    import keras_hub
    import tensorflow as tf

    return {
        "TensorFlow": tf.__version__,
        "Keras": keras.__version__,
        "keras-hub": keras_hub.__version__,
    }


def render_page(records: dict, versions_: dict) -> str:
    """docs/zoo.md from {(family, name, depth): record}."""
    pinned = ", ".join(f"{k} {v}" for k, v in versions_.items())
    parts = [
        "# Model zoo",
        "",
        "<!-- Generated by scripts/zoo.py from its cache (build/zoo/); do not edit by hand. -->",
        "",
        f"Generated by `python scripts/zoo.py` with {pinned}. Every `keras.applications` "
        "architecture and every keras-hub backbone of that version is profiled at `--depth 1` "
        "and at `--depth all`, float ops only (no timing), each (model, depth) in its own process. "
        "Weights are random and nothing is downloaded: applications are built with "
        "`weights=None` at the smallest input each allows, keras-hub backbones from small "
        f"configs (hidden sizes of 16 to 64, one or two layers, a vocabulary of 64, {SEQ_LEN} "
        "tokens) written in the script's `HUB_CONFIGS`, never from a preset. "
        "The base classes `Backbone` and `FeaturePyramidBackbone` are not architectures and "
        "are left out.",
        "",
        "Status: **exact**, every row was counted and equals the whole graph's count, and the rows "
        "sum to it (float ops in both conventions, MACs, op bytes); **disagree**, some of those "
        "differ; **failed**, a row, an expanded layer or the profile itself failed (the error's "
        "first line is shown); **does not build**, the model cannot be built from its small "
        "config. Uncounted op types are arithmetic ops no rule counts, so the totals are lower "
        "bounds there.",
        "",
        summary_table(records),
    ]
    for family, title in (("applications", "keras.applications"), ("keras_hub", "keras-hub")):
        rows = {k: v for k, v in records.items() if k[0] == family}
        parts += ["", f"## {title}", "", family_table(rows)]
    notes = [f"- {name}: {note}" for name, (_, note) in sorted(HUB_PREPARE.items())]
    parts += ["", "Prepared after building:", "", "\n".join(notes)] if notes else []
    return "\n".join(_wrap(part) for part in parts) + "\n"


def _wrap(paragraph: str, width: int = 96) -> str:
    """Prose wrapped like the other pages; headings, tables and comments as they are."""
    if paragraph.startswith(("#", "|", "<!--")) or not paragraph:
        return paragraph
    fill = dict(width=width, break_long_words=False, break_on_hyphens=False)
    if paragraph.startswith("- "):  # a list: one item a line
        lines = paragraph.splitlines()
        return "\n".join(textwrap.fill(item, subsequent_indent="  ", **fill) for item in lines)
    return textwrap.fill(paragraph, **fill)


def summary_table(records: dict) -> str:
    lines = ["| family | depth | " + " | ".join(STATUSES) + " |", "|---|---|" + "---:|" * 4]
    for family in ("applications", "keras_hub"):
        for depth in DEPTHS:
            rs = [r for (f, _, d), r in records.items() if f == family and d == depth]
            counts = [sum(r["status"] == s for r in rs) for s in STATUSES]
            name = "keras.applications" if family == "applications" else "keras-hub"
            lines.append(f"| {name} | {depth} | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(lines)


def family_table(records: dict) -> str:
    lines = [
        "| model | inputs | depth | status | rows | MACs | uncounted op types | error |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    for (_, name, depth), r in sorted(records.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        uncounted = ", ".join(f"{op} ×{n}" for op, n in sorted(r.get("uncounted_ops", {}).items()))
        cells = [
            name,
            r.get("inputs", ""),
            depth,
            r["status"],
            _number(r.get("rows")),
            _number(r.get("macs")),
            uncounted,
            r.get("error") or "",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _number(value) -> str:
    return "" if value is None else f"{value:,}"


def _cell(text: str, limit: int = 200) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def collect(cases, cache: Path) -> dict:
    records = {}
    for case in cases:
        for depth in DEPTHS:
            record = load_cached(cache, case, depth)
            if record is not None:
                records[(case.family, case.name, depth)] = record
    return records


# --- the command line ---------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", metavar="NAME", help="profile only NAME (repeatable)")
    p.add_argument("--rerun-failed", action="store_true", help="rerun cached results not exact")
    p.add_argument("--rerun", action="store_true", help="ignore the cache")
    p.add_argument("--jobs", type=int, default=1, help="worker processes at once (default 1)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per (model, depth)")
    p.add_argument("--page-only", action="store_true", help="rewrite the page from the cache")
    p.add_argument("--cache", type=Path, default=CACHE, help="cache folder (default build/zoo)")
    p.add_argument("--page", type=Path, default=PAGE, help="the page (default docs/zoo.md)")
    p.add_argument("--worker", metavar="NAME", help=argparse.SUPPRESS)
    p.add_argument("--depth", choices=DEPTHS, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        from submodel_profiler.tf_logging import quiet_tf

        with quiet_tf():
            record = profile_case(args.worker, args.depth)
        args.out.write_text(json.dumps(record, indent=1))
        return 0
    cases = all_cases()
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in cases})
        if unknown:
            sys.exit(f"zoo.py: unknown model(s): {', '.join(unknown)}")
        cases = [c for c in cases if c.name in args.only]
    if not args.page_only:
        todo = pending(cases, args.cache, args.rerun, args.rerun_failed)
        print(f"zoo: {len(todo)} (model, depth) to profile, {args.jobs} at a time", flush=True)
        run_all(todo, args.cache, max(1, args.jobs), args.timeout)
    records = collect(all_cases(), args.cache)
    args.page.write_text(render_page(records, versions()))
    print(f"zoo: wrote {args.page} ({len(records)} results)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
