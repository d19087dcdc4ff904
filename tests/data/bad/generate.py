#!/usr/bin/env python3
"""Regenerates the hostile-input corpus in tests/data/bad/ (and the good files in tests/data/good/).

Every file under bad/{models,chips,sweeps,hf}/ and every line of bad/caps.txt must make capscale exit
with status 2 and one line "capscale: error: ..." (tests/cli/test_hostile.cpp). The files are
committed; this script only documents how the generated ones (deep nesting, random bytes) were made
and lets them be rebuilt byte for byte (fixed seeds). Run: python3 tests/data/bad/generate.py
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
GOOD = os.path.join(os.path.dirname(HERE), "good")
DEEP = 10000  # nesting depth of the deep files

MODEL = """\
name: hostile-base
description: small Llama-style model used as the base of the hostile corpus
num_layers: 4
hidden_size: 512
ffn_hidden_size: 1376
num_attention_heads: 8
num_query_groups: 4
vocab_size: 32000
seq_length: 1024
activation: swiglu
normalization: rmsnorm
add_bias_linear: false
position_embedding: rope
tie_embeddings: false
sources:
  architecture: capscale test corpus (synthetic)
"""

CHIP = """\
name: hostile-chip
description: synthetic chip for the hostile corpus
arch: hopper
peak_tflops:
  bf16: 989.4
  fp8: 1978.9
hbm_gb: 80
hbm_tbps: 3.35
nvlink_gbyte_s: 900
nvlink_domain: 8
nic_gbit_s: 400
nvlink_latency_us: 3.4
nic_latency_us: 14.0
efficiency:
  gemm: 0.78
  attention: 0.6
  hbm: 0.87
  nvlink: 0.82
  nic: 0.92
reserved_gb: 4
sources:
  peak_tflops: synthetic
"""

SWEEP = """\
name: hostile-sweep
description: small sweep for the hostile corpus
models: [tiny-gpt]
targets: [h100, h100@nvlink=400]
gpus: [8, 16]
global_batch_size: 64
seq_length: 128
plans: [search]
"""

RUNS = """\
runs:
- id: X1
  source: capscale hostile corpus (synthetic)
  chip: a100
  gpus: 32
  model: gpt-1.7b
  seq_length: 2048
  global_batch_size: 512
  micro_batch_size: 16
  tp: 1
  pp: 1
  recompute: full
  precision: fp16
  metric: tflops_per_gpu
  value: 137
  flop_convention: sc21_eq3
  in_budget: true
  fit: false
"""

HF = {
    "_name_or_path": "hostile/llama-tiny",
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "hidden_size": 512,
    "intermediate_size": 1376,
    "num_attention_heads": 8,
    "num_hidden_layers": 4,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "torch_dtype": "bfloat16",
}

# Mixture-of-experts config.json files as published on the Hugging Face Hub (auto_map and
# quantization_config left out). capscale predicts dense models only, so each must exit 2 naming the
# expert-count field rather than be predicted as the dense model its other fields describe.
MIXTRAL_8X7B = {  # mistralai/Mixtral-8x7B-v0.1
    "architectures": ["MixtralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mixtral",
    "num_attention_heads": 32,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "output_router_logits": False,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.02,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 32000,
}

DEEPSEEK_V3 = {  # deepseek-ai/DeepSeek-V3
    "architectures": ["DeepseekV3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "ep_size": 1,
    "first_k_dense_replace": 3,
    "hidden_act": "silu",
    "hidden_size": 7168,
    "initializer_range": 0.02,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048,
    "moe_layer_freq": 1,
    "n_group": 8,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "seq_aux": True,
    "tie_word_embeddings": False,
    "topk_group": 4,
    "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "v_head_dim": 128,
    "vocab_size": 129280,
}

QWEN3_30B_A3B = {  # Qwen/Qwen3-30B-A3B
    "architectures": ["Qwen3MoeForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "decoder_sparse_step": 1,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 6144,
    "max_position_embeddings": 40960,
    "max_window_layers": 48,
    "mlp_only_layers": [],
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 768,
    "norm_topk_prob": True,
    "num_attention_heads": 32,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 48,
    "num_key_value_heads": 4,
    "output_router_logits": False,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.001,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}


def sub(text, key, value):
    """Replaces the line `key: ...` (first match, any indent) with `key: value`."""
    out, done = [], False
    for line in text.splitlines(keepends=True):
        if not done and line.strip().startswith(key + ":"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{key}: {value}\n")
            done = True
        else:
            out.append(line)
    assert done, key
    return "".join(out)


def drop(text, key):
    lines = [l for l in text.splitlines(keepends=True) if not l.startswith(key + ":")]
    assert len(lines) < len(text.splitlines()), key
    return "".join(lines)


GPT_OSS_120B = {  # openai/gpt-oss-120b (quantization_config and rope_scaling details left out)
    "architectures": ["GptOssForCausalLM"],
    "attention_bias": True,
    "attention_dropout": 0.0,
    "eos_token_id": 200002,
    "experts_per_token": 4,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2880,
    "initial_context_length": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 18,
    "max_position_embeddings": 131072,
    "model_type": "gpt_oss",
    "num_attention_heads": 64,
    "num_experts_per_tok": 4,
    "num_hidden_layers": 36,
    "num_key_value_heads": 8,
    "num_local_experts": 128,
    "output_router_logits": False,
    "pad_token_id": 199999,
    "rms_norm_eps": 1e-05,
    "rope_theta": 150000,
    "router_aux_loss_coef": 0.9,
    "sliding_window": 128,
    "swiglu_limit": 7.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 201088,
}


def hf(**changes):
    d = dict(HF)
    for k, v in changes.items():
        if v is DROP:
            d.pop(k)
        else:
            d[k] = v
    return json.dumps(d, indent=2) + "\n"


DROP = object()


def garbage(seed, n, nul=True):
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(n))
    return data if nul else data.replace(b"\0", b"\xff")


def deep_seq_yaml(key):
    return f"{key}: " + "[" * DEEP + "]" * DEEP + "\n"


def deep_map_yaml(key):
    return f"{key}: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"


def block_nest_yaml(depth):
    # Block-style nesting: one more space per level (depth*(depth+1)/2 bytes of indentation).
    out = ["name: x\nsources:\n"]
    for i in range(depth):
        out.append(" " * (i + 1) + f"k{i}:\n")
    out.append(" " * (depth + 1) + "v\n")
    return "".join(out)


def billion_laughs():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    lines.append(f"name: *{prev}")
    return "\n".join(lines) + "\n"


def files():
    m, c, s = MODEL, CHIP, SWEEP
    yield "models/empty.yaml", ""
    yield "models/only_comments.yaml", "# nothing here\n\n   \n# still nothing\n"
    yield "models/truncated_mid_quote.yaml", m[: m.index("architecture:")] + "architecture: 'capscale test corp"
    yield "models/truncated_missing_keys.yaml", m[: m.index("ffn_hidden_size")]
    yield "models/truncated_mid_key.yaml", m[: m.index("num_attention_heads") + 9]
    yield "models/string_for_int.yaml", sub(m, "num_layers", "thirty-two")
    yield "models/quoted_empty_int.yaml", sub(m, "num_layers", "''")
    yield "models/null_int.yaml", sub(m, "hidden_size", "~")
    yield "models/list_for_scalar.yaml", sub(m, "hidden_size", "[512]")
    yield "models/map_for_scalar.yaml", sub(m, "name", "{first: a, second: b}")
    yield "models/huge_float.yaml", sub(m, "hidden_size", "1e400")
    yield "models/huge_int.yaml", sub(m, "num_layers", "99999999999999999999")
    yield "models/int64_max.yaml", sub(m, "vocab_size", "9223372036854775807")
    yield "models/int64_overflow_neg.yaml", sub(m, "seq_length", "-9223372036854775809")
    yield "models/hex_int.yaml", sub(m, "num_layers", "0x7fffffffffffffff")
    yield "models/negative.yaml", sub(m, "num_layers", "-4")
    yield "models/zero_heads.yaml", sub(m, "num_attention_heads", "0")
    yield "models/zero_query_groups.yaml", sub(m, "num_query_groups", "0")
    yield "models/fractional.yaml", sub(m, "num_layers", "2.5")
    yield "models/nan.yaml", m + "published_params: .nan\n"
    yield "models/inf.yaml", sub(m, "hidden_size", ".inf")
    yield "models/neg_inf_params.yaml", m + "published_params: -.inf\n"
    yield "models/denormal_params.yaml", m + "published_params: 4.9e-324\n"
    yield "models/unknown_key.yaml", m + "num_layer: 4\n"
    # yaml-cpp 0.7 never returns from LoadAll on a leading flow entry (found by fuzz_yaml_chip).
    yield "models/leading_comma.yaml", "," + m
    yield "models/unknown_nested_key.yaml", m + "extra:\n  deeply: {nested: [1, 2, 3]}\n"
    yield "models/duplicate_key.yaml", m + "num_layers: 400\n"
    yield "models/top_level_list.yaml", "- " + m.replace("\n", "\n  ").rstrip() + "\n"
    yield "models/top_level_scalar.yaml", "just a string\n"
    yield "models/multi_document.yaml", m + "---\n" + m
    yield "models/heads_not_divisible_by_groups.yaml", sub(m, "num_query_groups", "3")
    yield "models/hidden_not_divisible_by_heads.yaml", sub(m, "hidden_size", "500")
    yield "models/bad_enum.yaml", sub(m, "activation", "relu")
    yield "models/bad_normalization.yaml", sub(m, "normalization", "batchnorm")
    yield "models/bad_position_embedding.yaml", sub(m, "position_embedding", "alibi")
    yield "models/enum_case.yaml", sub(m, "activation", "SwiGLU")
    yield "models/enum_empty.yaml", sub(m, "normalization", "''")
    yield "models/enum_list.yaml", sub(m, "position_embedding", "[rope]")
    yield "models/bad_bool.yaml", sub(m, "tie_embeddings", "maybe")
    yield "models/sources_list.yaml", m.replace("sources:\n  architecture: capscale test corpus (synthetic)\n",
                                                "sources: [a, b]\n")
    yield "models/sources_nested.yaml", m.replace("  architecture: capscale test corpus (synthetic)\n",
                                                  "  architecture: {paper: x}\n")
    yield "models/non_scalar_key.yaml", m + "? [a, b]\n: 1\n"
    yield "models/newline_in_value.yaml", sub(m, "num_layers", '"4\\nsecond line"')
    yield "models/newline_in_key.yaml", m + '"bad\\nkey": 1\n'
    yield "models/tabs.yaml", m.replace("  architecture", "\tarchitecture")
    yield "models/unclosed_flow.yaml", "name: [a, b\nnum_layers: 4\n"
    yield "models/bad_alias.yaml", m + "x: *nowhere\n"
    yield "models/billion_laughs.yaml", billion_laughs()
    yield "models/deep_flow_seq.yaml", deep_seq_yaml("name")
    yield "models/deep_flow_map.yaml", deep_map_yaml("name")
    yield "models/deep_unclosed.yaml", "name: " + "[" * DEEP + "\n"
    yield "models/deep_block.yaml", block_nest_yaml(400)
    yield "models/deep_block_seq_inline.yaml", "- " * DEEP + "x\n"
    yield "models/deep_complex_keys.yaml", "? " * DEEP + "x\n"
    yield "models/many_tags.yaml", "name: " + "!!str " * DEEP + "x\n"
    yield "models/self_alias.yaml", m.replace("name: hostile-base", "name: &a [*a]")
    yield "models/merge_key.yaml", "base: &b {num_layers: 4}\n" + m + "<<: *b\n"
    yield "models/binary_garbage.yaml", garbage(1, 4096)
    yield "models/binary_no_nul.yaml", garbage(2, 4096, nul=False)
    yield "models/invalid_utf8.yaml", m.encode() + b"description2: \xc3\x28\xa0\xa1\n"

    yield "chips/empty.yaml", ""
    yield "chips/truncated.yaml", c[: c.index("nvlink_gbyte_s")]
    yield "chips/truncated_mid_map.yaml", c[: c.index("fp8:") + 3]
    yield "chips/peak_tflops_scalar.yaml", c.replace("peak_tflops:\n  bf16: 989.4\n  fp8: 1978.9\n", "peak_tflops: 989.4\n")
    yield "chips/peak_tflops_empty.yaml", c.replace("peak_tflops:\n  bf16: 989.4\n  fp8: 1978.9\n", "peak_tflops: {}\n")
    yield "chips/peak_tflops_unknown_dtype.yaml", c.replace("  fp8: 1978.9\n", "  fp8: 1978.9\n  int4: 4000\n")
    yield "chips/peak_tflops_non_scalar_key.yaml", c.replace("  fp8: 1978.9\n", "  fp8: 1978.9\n  ? [bf16]\n  : 1\n")
    yield "chips/peak_negative.yaml", sub(c, "bf16", "-989.4")
    yield "chips/peak_inf.yaml", sub(c, "bf16", ".inf")
    yield "chips/peak_nan.yaml", sub(c, "fp8", ".NaN")
    yield "chips/peak_huge.yaml", sub(c, "bf16", "1e400")
    yield "chips/hbm_zero.yaml", sub(c, "hbm_gb", "0")
    yield "chips/hbm_string.yaml", sub(c, "hbm_tbps", "fast")
    yield "chips/nvlink_domain_fraction.yaml", sub(c, "nvlink_domain", "2.5")
    yield "chips/nvlink_domain_huge.yaml", sub(c, "nvlink_domain", "99999999999999999999")
    yield "chips/nvlink_domain_list.yaml", sub(c, "nvlink_domain", "[8, 16]")
    yield "chips/nic_negative.yaml", sub(c, "nic_gbit_s", "-400")
    yield "chips/latency_nan.yaml", sub(c, "nic_latency_us", ".nan")
    yield "chips/reserved_exceeds_hbm.yaml", sub(c, "reserved_gb", "81")
    yield "chips/efficiency_above_one.yaml", sub(c, "gemm", "1.5")
    yield "chips/efficiency_scalar.yaml", c.replace(
        "efficiency:\n  gemm: 0.78\n  attention: 0.6\n  hbm: 0.87\n  nvlink: 0.82\n  nic: 0.92\n", "efficiency: 0.8\n")
    yield "chips/efficiency_unknown_key.yaml", c.replace("  nic: 0.92\n", "  nic: 0.92\n  pcie: 0.5\n")
    yield "chips/attention_dropout_zero.yaml", c.replace("  attention: 0.6\n", "  attention: 0.6\n  attention_dropout: 0\n")
    yield "chips/host_step_gap_negative.yaml", c.replace("reserved_gb: 4\n", "reserved_gb: 4\nhost_step_gap_s: -0.05\n")
    yield "chips/bad_arch.yaml", sub(c, "arch", "volta")
    yield "chips/arch_empty.yaml", sub(c, "arch", "''")
    yield "chips/arch_case.yaml", sub(c, "arch", "Hopper")
    yield "chips/arch_map.yaml", sub(c, "arch", "{name: hopper}")
    yield "chips/chips_per_package_zero.yaml", c + "chips_per_package: 0\n"
    yield "chips/unknown_key.yaml", c + "nvlink_gpbs: 900\n"
    yield "chips/leading_comma.yaml", "# a comment first\n\n  ," + c
    yield "chips/tag_then_commas.yaml", "!tag" + "," * 40 + "\n" + c
    yield "chips/efficiency_range_excludes_value.yaml", c + "efficiency_ranges:\n  attention: [0.7, 0.8]\n"
    yield "chips/efficiency_range_unknown_field.yaml", c + "efficiency_ranges:\n  sustained: [0.7, 0.9]\n"
    yield "chips/efficiency_range_scalar.yaml", c + "efficiency_ranges:\n  gemm: 0.7\n"
    yield "chips/node_jitter_above_half.yaml", c + "node_jitter: 0.6\n"
    yield "chips/duplicate_key.yaml", c + "hbm_gb: 8000\n"
    yield "chips/top_level_list.yaml", "- h100\n- h200\n"
    yield "chips/deep_flow_seq.yaml", deep_seq_yaml("peak_tflops")
    yield "chips/deep_flow_map.yaml", c.replace("efficiency:\n  gemm: 0.78\n  attention: 0.6\n  hbm: 0.87\n  nvlink: 0.82\n  nic: 0.92\n",
                                                  "efficiency: " + "{gemm: " * DEEP + "0.5" + "}" * DEEP + "\n")
    yield "chips/cyclic_alias.yaml", c.replace("peak_tflops:\n  bf16: 989.4\n", "peak_tflops: &p\n  self: *p\n  bf16: 989.4\n")
    # Keys renamed for their units (nvlink_gbps was GB/s, nic_gbps Gb/s): the message names the new key.
    yield "chips/old_key_nvlink_gbps.yaml", c.replace("nvlink_gbyte_s:", "nvlink_gbps:")
    yield "chips/old_key_nic_gbps.yaml", c.replace("nic_gbit_s:", "nic_gbps:")
    yield "chips/binary_garbage.yaml", garbage(3, 2048)
    yield "chips/binary_no_nul.yaml", garbage(4, 2048, nul=False)

    yield "sweeps/empty.yaml", ""
    yield "sweeps/truncated.yaml", s[: s.index("gpus")]
    yield "sweeps/targets_empty.yaml", sub(s, "targets", "[]")
    yield "sweeps/bad_cap_key.yaml", sub(s, "targets", "[h100@foo=1]")
    yield "sweeps/bad_cap_value.yaml", sub(s, "targets", "[h100@nvlink=-5]")
    yield "sweeps/cap_nan.yaml", sub(s, "targets", "[h100@nvlink=nan]")
    yield "sweeps/target_map.yaml", sub(s, "targets", "[{chip: h100}]")
    yield "sweeps/cap_sweep_bad_key.yaml", drop(s, "targets") + "cap_sweep: {chip: h100, key: pcie, values: [1, 2]}\n"
    yield "sweeps/cap_sweep_inf.yaml", drop(s, "targets") + "cap_sweep: {chip: h100, key: nvlink, values: [900, .inf]}\n"
    yield "sweeps/cap_sweep_unknown_key.yaml", drop(s, "targets") + "cap_sweep: {chip: h100, key: nvlink, values: [900], step: 2}\n"
    yield "sweeps/gpus_empty.yaml", sub(s, "gpus", "[]")
    yield "sweeps/gpus_negative.yaml", sub(s, "gpus", "[8, -16]")
    yield "sweeps/gpus_string.yaml", sub(s, "gpus", "lots")
    yield "sweeps/gpus_huge.yaml", sub(s, "gpus", "[1e400]")
    yield "sweeps/gpus_range_reversed.yaml", sub(s, "gpus", "{from: 64, to: 8}")
    yield "sweeps/gpus_factor_one.yaml", sub(s, "gpus", "{from: 1, to: 1024, factor: 1}")
    yield "sweeps/gpus_nested_list.yaml", sub(s, "gpus", "[[8, 16]]")
    yield "sweeps/both_batch_sizes.yaml", s + "global_batch_size_per_gpu: 2\n"
    yield "sweeps/no_batch_size.yaml", drop(s, "global_batch_size")
    yield "sweeps/plan_tp_zero.yaml", sub(s, "plans", "[{tp: 0}]")
    yield "sweeps/plan_typo.yaml", sub(s, "plans", "[serach]")
    yield "sweeps/plan_unknown_key.yaml", sub(s, "plans", "[{tp: 2, dp: 4}]")
    yield "sweeps/plans_map.yaml", sub(s, "plans", "{tp: 2}")
    yield "sweeps/bad_precision.yaml", s + "precision: fp4\n"
    yield "sweeps/precision_case.yaml", s + "precision: BF16\n"
    yield "sweeps/plan_bad_recompute.yaml", sub(s, "plans", "[{tp: 2, recompute: sometimes}]")
    yield "sweeps/plan_bad_precision.yaml", sub(s, "plans", "[{tp: 2, precision: fp4}]")
    yield "sweeps/cap_sweep_key_empty.yaml", drop(s, "targets") + "cap_sweep: {chip: h100, key: '', values: [1, 2]}\n"
    yield "sweeps/cap_sweep_key_list.yaml", drop(s, "targets") + "cap_sweep: {chip: h100, key: [nvlink], values: [1, 2]}\n"
    yield "sweeps/reference_bad_target.yaml", s + "reference: {target: 'h100@', gpus: 8}\n"
    yield "sweeps/reference_missing_gpus.yaml", s + "reference: {target: h100}\n"
    yield "sweeps/unknown_model.yaml", sub(s, "models", "[no-such-model]")
    yield "sweeps/unknown_chip.yaml", sub(s, "targets", "[no-such-chip@nvlink=400]")
    yield "sweeps/too_many_points.yaml", (
        sub(sub(s, "targets", "[" + ", ".join(["h100"] * 1000) + "]"), "gpus",
            "[" + ", ".join(str(8 * (i + 1)) for i in range(1000)) + "]").replace("models: [tiny-gpt]", "models: [" + ", ".join(["tiny-gpt"] * 11) + "]"))
    yield "sweeps/duplicate_key.yaml", s + "seq_length: 4096\n"
    yield "sweeps/top_level_list.yaml", "- tiny-gpt\n- h100\n"
    yield "sweeps/deep_flow_seq.yaml", s.replace("targets: [h100, h100@nvlink=400]\n", deep_seq_yaml("targets"))
    yield "sweeps/binary_garbage.yaml", garbage(5, 3000)

    yield "hf/empty.json", ""
    yield "hf/truncated.json", hf()[: hf().index('"num_hidden_layers"') + 10]
    yield "hf/array.json", "[1, 2, 3]\n"
    yield "hf/scalar.json", "42\n"
    yield "hf/null.json", "null\n"
    yield "hf/string_for_int.json", hf(hidden_size="512")
    yield "hf/float_for_int.json", hf(num_hidden_layers=4.0)
    yield "hf/list_for_int.json", hf(num_attention_heads=[8])
    yield "hf/bool_for_int.json", hf(vocab_size=True)
    yield "hf/huge_float.json", hf().replace('"hidden_size": 512', '"hidden_size": 1e400')
    yield "hf/huge_int.json", hf().replace('"num_hidden_layers": 4', '"num_hidden_layers": 99999999999999999999')
    yield "hf/uint64_max.json", hf().replace('"vocab_size": 32000', '"vocab_size": 18446744073709551615')
    yield "hf/negative.json", hf(num_hidden_layers=-4)
    yield "hf/zero_heads.json", hf(num_attention_heads=0)
    yield "hf/zero_kv_heads.json", hf(num_key_value_heads=0)
    yield "hf/nan_literal.json", hf().replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": NaN')
    yield "hf/infinity_literal.json", hf().replace('"hidden_size": 512', '"hidden_size": Infinity')
    yield "hf/missing_required.json", hf(num_hidden_layers=DROP)
    yield "hf/heads_not_divisible.json", hf(num_key_value_heads=3)
    yield "hf/hidden_not_divisible.json", hf(hidden_size=500)
    yield "hf/bad_activation.json", hf(hidden_act="tanh")
    yield "hf/bad_activation_case.json", hf(hidden_act="SiLU")
    yield "hf/bad_activation_empty.json", hf(hidden_act="")
    yield "hf/activation_number.json", hf(hidden_act=5)
    yield "hf/activation_list.json", hf(hidden_act=["silu"])
    yield "hf/tie_string.json", hf(tie_word_embeddings="yes")
    yield "hf/trailing_comma.json", hf().replace('"torch_dtype": "bfloat16"', '"torch_dtype": "bfloat16",')
    yield "hf/trailing_garbage.json", hf() + "}}}\n"
    yield "hf/comments.json", "// a comment\n" + hf()
    yield "hf/deep_array.json", "[" * DEEP + "]" * DEEP + "\n"
    yield "hf/deep_object.json", '{"a":' * DEEP + "1" + "}" * DEEP + "\n"
    yield "hf/deep_unclosed.json", "[" * DEEP + "\n"
    # HF keys capscale does not read are ignored, so a deeply nested one must load (exit 0).
    yield "../good/hf/deep_ignored_key.json", hf()[:-2] + ',\n  "extra": ' + "[" * DEEP + "]" * DEEP + "\n}\n"
    yield "hf/invalid_utf8.json", hf().encode().replace(b'"hostile/llama-tiny"', b'"hostile/\xc3\x28\xa0"')
    yield "hf/binary_garbage.json", garbage(6, 4096)
    # Published MoE configs load (tests/unit/test_config.cpp checks their parameter counts).
    yield "../good/hf/mixtral_8x7b.json", json.dumps(MIXTRAL_8X7B, indent=2) + "\n"
    yield "../good/hf/deepseek_v3.json", json.dumps(DEEPSEEK_V3, indent=2) + "\n"
    yield "../good/hf/qwen3_30b_a3b.json", json.dumps(QWEN3_30B_A3B, indent=2) + "\n"
    yield "../good/hf/gpt_oss_120b.json", json.dumps(GPT_OSS_120B, indent=2) + "\n"
    yield "hf/moe_top_k_only.json", hf(num_experts_per_tok=2)  # no count key capscale knows
    yield "hf/moe_negative_experts.json", hf(num_local_experts=-8)
    yield "hf/moe_unknown_key.json", hf(moe_num_experts=16)  # DBRX-style key capscale does not read
    yield "hf/moe_topk_above_experts.json", hf(num_local_experts=8, num_experts_per_tok=9)
    yield "hf/moe_sparse_step.json", hf(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64, decoder_sparse_step=2)
    yield "hf/moe_layer_types_irregular.json", json.dumps(
        dict(GPT_OSS_120B, layer_types=["full_attention"] + ["sliding_attention"] * 35), indent=2) + "\n"
    # Expert counts given as null or 0 say "dense": such a config loads (exit 0).
    yield "../good/hf/dense_null_or_zero_experts.json", hf(num_local_experts=None, num_experts=0, moe_intermediate_size=1408)

    # Published-run (validation) files, loaded by `capscale validate --runs FILE`.
    r = RUNS
    yield "validation/bad_metric.yaml", sub(r, "metric", "tokens_per_day")
    yield "validation/bad_flop_convention.yaml", sub(r, "flop_convention", "sc22")
    yield "validation/bad_recompute.yaml", sub(r, "recompute", "sometimes")
    yield "validation/bad_precision.yaml", sub(r, "precision", "fp4")
    yield "validation/metric_case.yaml", sub(r, "metric", "MFU")
    yield "validation/metric_list.yaml", sub(r, "metric", "[mfu]")
    yield "validation/bad_model_activation.yaml", r.replace(
        "  model: gpt-1.7b\n", "  model:\n" + "".join("    " + l + "\n" for l in sub(m, "activation", "relu").splitlines()
                                                        if not l.startswith(("sources", "  architecture"))))
    yield "validation/runs_empty_map.yaml", "runs: {}\n"

    yield "../good/models/good-model.yaml", m
    yield "../good/chips/good-chip.yaml", c
    yield "../good/sweeps/good-sweep.yaml", s
    yield "../good/hf/config.json", hf()
    yield "../good/validation/good-runs.yaml", r


def caps():
    return [
        "h100@foo=1",
        "h100@nvlink=-5",
        "h100@nvlink=0",
        "h100@tflops=150%",
        "h100@tflops=0%",
        "h100@nvlink=nan",
        "h100@nvlink=inf",
        "h100@nic=-inf",
        "h100@nvlink=1e400",
        "h100@nvlink=99999999999999999999",
        "h100@hbm_tbps=1e-400",
        "h100@nvlink=1e-300",
        "h100@tflops=0.001%",
        "@nvlink=4",
        "h100@",
        "h100@nvlink",
        "h100@nvlink=",
        "h100@=5",
        "h100@nvlink=400,",
        "h100@nvlink=400,,nic=100",
        "h100@@nvlink=4",
        "h100@nvlink=4%%",
        "h100@nvlink=4 GB/s",
        "nosuchchip",
        "nosuchchip@nvlink=400",
        "../models/llama3.1-8b",
        "h100,,h20",
        "h100,h20",
        "h100@nvlink_domain=2.5",
        "h100@nvlink_domain=50%",
        "h100@nvlink_domain=0",
        "h100@hbm_gb=2",
        "h100@hbm_gb=1%",
        "h100@node_jitter=2%",
        "h100@node_jitter=0.7",
        "h100@node_jitter=-0.1",
        "/etc/passwd",
        "h100@" + "x" * 300 + "=1",  # 300 characters of an unknown cap key
        "h100@nvlink=" + "0" * 290 + "-1",  # 300 characters, one negative value
        "h100@" + ",".join(["nvlink=400"] * 28),  # 300 characters of the same cap repeated
    ]


def main():
    for rel, content in files():
        path = os.path.normpath(os.path.join(HERE, rel))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = content if isinstance(content, bytes) else content.encode()
        assert len(data) < 100_000, (rel, len(data))
        with open(path, "wb") as f:
            f.write(data)
    with open(os.path.join(HERE, "caps.txt"), "w") as f:
        f.write("# One bad target spec per line for `capscale predict --chip SPEC` (tests/cli/test_hostile.cpp).\n")
        f.write("# Lines starting with '#' and blank lines are skipped.\n")
        for line in caps():
            f.write(line + "\n")


if __name__ == "__main__":
    main()
