// Flags shared by run, predict and bench clock.
#include "cli/commands.hpp"
#include "common/error.hpp"

namespace capscale::cli {

void add_parallel_flags(CLI::App* cmd, ParallelFlags& f) {
  cmd->add_option("--tp", f.tp, "tensor_model_parallel_size");
  cmd->add_option("--pp", f.pp, "pipeline_model_parallel_size");
  cmd->add_option("--vpp", f.vpp, "virtual_pipeline_model_parallel_size (chunks per pipeline rank)");
  cmd->add_option("--cp", f.cp, "context_parallel_size");
  cmd->add_flag("--sequence-parallel", f.sequence_parallel, "sequence parallelism (needs tp > 1)");
  cmd->add_option("--micro-batch-size", f.micro_batch_size, "sequences per micro-batch");
  cmd->add_option("--global-batch-size", f.global_batch_size, "sequences per step (default micro-batch x dp)");
  cmd->add_option("--seq-length", f.seq_length, "sequence length (default: the model's)");
  cmd->add_option("--recompute", f.recompute, "activation recompute: none | selective | full");
  cmd->add_option("--zero", f.zero, "1 = distributed optimizer (ZeRO-1), 0 = plain all-reduce");
  cmd->add_option("--precision", f.precision, "bf16 | fp16 | fp8");
  cmd->add_flag("--tp-comm-overlap", f.tp_comm_overlap, "overlap TP communication with GEMMs in chunks (needs --sequence-parallel)");
  cmd->add_flag("--no-flash-attention", f.no_flash_attention, "model unfused attention (scores stored in HBM)");
  cmd->add_option("--num-layers", f.num_layers,
                  "run a proxy of the model with this many of its layers (e.g. Llama 3.1 8B layers on one GPU)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_flag("--grad-reduce-in-bf16", f.grad_reduce_in_bf16,
                "reduce DP gradients in bf16 (Megatron --grad-reduce-in-bf16; default fp32)");
}

config::ModelConfig ParallelFlags::load_model(const std::string& spec) const {
  config::ModelConfig m = config::load_model(spec);
  if (num_layers == 0) return m;
  if (num_layers < 1 || num_layers > m.num_layers) {
    throw InputError("--num-layers", "", "must be in [1, " + std::to_string(m.num_layers) + "] (the layers of " + m.name +
                                             "), got " + std::to_string(num_layers));
  }
  // A proxy keeps every per-layer shape, the embedding and the head; only the depth changes
  // (as NVIDIA's DGXC "proxy" configurations do), so its per-layer timings are the full model's.
  m.name += "-" + std::to_string(num_layers) + "L";
  m.description += " (proxy: " + std::to_string(num_layers) + " of " + std::to_string(m.num_layers) + " layers)";
  m.num_layers = num_layers;
  return m;
}

config::ParallelConfig ParallelFlags::to_config() const {
  config::ParallelConfig p;
  p.tp = tp, p.pp = pp, p.vpp = vpp, p.cp = cp;
  p.sequence_parallel = sequence_parallel;
  p.micro_batch_size = micro_batch_size, p.global_batch_size = global_batch_size, p.seq_length = seq_length;
  p.recompute = config::parse_recompute(recompute, "--recompute");
  p.precision = config::parse_precision(precision, "--precision");
  p.zero = zero;
  p.tp_comm_overlap = tp_comm_overlap;
  p.flash_attention = !no_flash_attention;
  p.grad_reduce_in_bf16 = grad_reduce_in_bf16;
  return p;
}

}  // namespace capscale::cli
