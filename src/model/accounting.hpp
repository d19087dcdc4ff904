// Parameter, FLOP and memory accounting for dense transformers, each with its closed form and
// citation. The plan's per-op FLOPs must add up to these (tests check that); MFU/HFU are defined here.
#pragma once
#include <cstdint>
#include <vector>

#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"

namespace capscale::model {

/// Attention parameters of one layer on one tp rank (QKV and projection, or MLA's projections).
int64_t attention_params_per_rank(const config::ModelConfig& m, int64_t tp);
/// Parameters of layer `layer` held by one tensor-parallel rank outside the routed experts (weights
/// split over tp; norms, row-parallel biases, the router and MLA's down-projections replicated): a
/// dense layer whole; an MoE layer's attention, norms, router and shared experts.
int64_t layer_params_per_rank(const config::ModelConfig& m, int64_t layer, int64_t tp);
/// Routed-expert parameters of layer `layer` on one rank: (E/ep)·(h·f·mats)/etp; 0 for a dense layer.
int64_t expert_params_per_rank(const config::ModelConfig& m, int64_t layer, int64_t ep, int64_t etp);
/// layer_params_per_rank split into the weight groups Megatron's DDP buckets meet one by one, in
/// the order of a backward pass (reverse definition order): a standard layer's FC2, FC1 with the
/// pre-MLP norm, attention projection, QKV with the input norm (each with its bias); MLA or MoE
/// layers in two groups (MLP part, attention part). The groups add up to layer_params_per_rank.
std::vector<int64_t> layer_param_groups(const config::ModelConfig& m, int64_t layer, int64_t tp);
/// Multi-token-prediction modules on one tp rank, routed experts excluded (expert_params_per_rank
/// of layer num_layers gives one module's): norms, the 2h→h projection, one layer each.
int64_t mtp_params_per_rank(const config::ModelConfig& m, int64_t tp);
/// Input embedding (vocab-parallel) + learned position embedding on one tp rank.
int64_t embedding_params_per_rank(const config::ModelConfig& m, int64_t tp);
/// Final norm + untied output layer on one tp rank (the tied case holds no output weights).
int64_t head_params_per_rank(const config::ModelConfig& m, int64_t tp);
/// Total parameters of the model (tp = 1), MTP modules excluded (as DeepSeek-V3's 671 B are).
int64_t total_params(const config::ModelConfig& m);
/// Parameters active per token: the total less the routed experts a token does not visit
/// ((E − k)/E of each MoE layer's experts). Equals total_params for a dense model.
int64_t active_params(const config::ModelConfig& m);

/// Weights one token multiplies in layer `layer` (attention projections, MLP — or router, top-k
/// routed and shared experts; no norms or biases): its forward matmul FLOPs per token are twice this.
double matmul_weights_per_layer(const config::ModelConfig& m, int64_t layer);
/// The top-k routed experts' share of matmul_weights_per_layer (0 outside MoE layers).
double routed_weights_per_layer(const config::ModelConfig& m, int64_t layer);
/// Model FLOPs per token, forward + backward, no recompute, attention counted as in PaLM App. B
/// (not halved for the causal mask): 6·N_matmul + 12·l·h_attn·s, with GQA/SwiGLU terms from the
/// GEMM shapes. Equals the DGXC README formula (12Lh²(1+G/H+s/h) + 18L·ffn·h + 6Vh) for Llama and
/// SC21's 72lh²(1 + s/6h + V/12lh) per token for GPT.
double model_flops_per_token(const config::ModelConfig& m, int64_t seq_length);
/// Narayanan et al. SC21 Eq. 3 (full recompute): 96·B·s·l·h²·(1 + s/6h + V/16lh) per step.
double sc21_eq3_flops(const config::ModelConfig& m, int64_t batch, int64_t seq_length);
/// The same paper's no-recompute form: 72·B·s·l·h²·(1 + s/6h + V/12lh).
double sc21_no_recompute_flops(const config::ModelConfig& m, int64_t batch, int64_t seq_length);

/// Memory per rank in bytes on the most loaded pipeline stage (Korthikanti et al. 2022; in-flight
/// activations from Megatron's schedule, peak_stage_activations).
struct MemoryEstimate {
  double weights = 0;      ///< 2 B/param (bf16)
  double grads = 0;        ///< 4 B/param (fp32 main grads, Megatron default for bf16)
  double optimizer = 0;    ///< 12 B/param (fp32 master, Adam m and v), ÷ dp·cp under ZeRO-1
  double activations = 0;  ///< the schedule's peak of in-flight micro-batches' activations
  double total() const { return weights + grads + optimizer + activations; }
};
MemoryEstimate memory_per_rank(const config::ModelConfig& m, const config::ParallelConfig& p);
/// The same estimate for every pipeline stage, stage 0 first (memory_per_rank is the largest).
std::vector<MemoryEstimate> memory_per_stage(const config::ModelConfig& m, const config::ParallelConfig& p);
/// Activation bytes of one layer for one micro-batch on one rank, Korthikanti et al. 2022 (§4.1,
/// Table 2) term by term with widths from the layer's shapes (GQA, MLA, gated MLPs, dropout): a GPT
/// layer is sbh(34 + 5as/h) without parallelism, sbh(10 + 24/t + 5as/(ht)) with TP, sbh/t·(34 +
/// 5as/h) with TP+SP; selective recompute (or fused flash attention, ParallelConfig::flash_attention)
/// drops the score term; without dropout the masks go (Llama 3.1 405B: 31.75 sbh/t). Full recompute
/// keeps only the 2sbh input. Under FP8 the inputs of the linear layers are kept in FP8 (Transformer
/// Engine), one byte less per element. MoE layers replace the dense MLP (see accounting.cpp).
double activation_bytes_per_layer(const config::ModelConfig& m, const config::ParallelConfig& p, int64_t layer = 0);
/// Peak activation bytes a pipeline stage holds under Megatron's schedule, from its chunks'
/// activations per micro-batch (chunk[c]: the layers of its c-th model chunk): 1F1B keeps
/// min(pp − stage, m) micro-batches; the interleaved schedule keeps its warm-up's 2(pp − stage − 1) +
/// (vpp − 1)·pp chunk-micro-batches and one more, whose mix of chunks moves through the steady state
/// (the first stage: Korthikanti's pp·(1 + (pp − 1)/(pp·vpp)) micro-batches; the last:
/// (vpp − 1)·pp + 1 chunk-micro-batches, not one micro-batch).
double peak_stage_activations(const std::vector<double>& chunk, int64_t pp, int64_t stage, int64_t m);

/// Megatron's uneven split: layers per global chunk (pp·vpp of them). When num_layers does not
/// divide, the first and last chunks get one fewer layer each (then the second and second-to-last
/// …), as Megatron's --decoder-first/last-pipeline-num-layers do (Llama 3 405B: 126 layers on pp 16
/// → 7, 8 × 14, 7).
/// With embedding_as_layer / loss_as_layer (Megatron --account-for-embedding-in-pipeline-split,
/// --account-for-loss-in-pipeline-split) the embedding / the output head and loss count as one
/// layer each in the split, so the first / last chunk holds one decoder layer fewer.
std::vector<int64_t> split_layers(int64_t num_layers, int64_t pp, int64_t vpp, bool embedding_as_layer = false,
                                  bool loss_as_layer = false);

/// Decoder layers per global model chunk (index v·pp + p) of a plan: its pipeline layout's
/// (config::parse_pipeline_layout) when it has one, else split_layers with its account-for flags.
/// The layout must be valid (config::violations); an invalid one is an InputError.
std::vector<int64_t> chunk_layers(const config::ModelConfig& m, const config::ParallelConfig& p);

}  // namespace capscale::model
