#!/usr/bin/env python3
"""GPU idle time per op of an eager PyTorch training step: the derivation of capscale's per-op gap.

Megatron runs eager PyTorch: the host issues every kernel of a step one by one, and where kernels are
short the GPU waits for the host. capscale charges each compute op of its plan a fixed gap
(predict/cost_model.hpp, kKernelOverheadS). This script measures that gap on the GPU it runs on:

  gap per plan op = (eager step time - CUDA-graph replay of the same step) / plan compute ops per step

The graph replay runs the identical kernels with no host in the loop, so the difference is the time
the GPU spent waiting for the host. "Plan compute ops" is what capscale's plan has for the same
layers (22 per GPT layer forward + backward: 9 forward, 13 backward, plus 6 for embedding, output
layer and loss), so the result is in the unit the cost model uses.

The layers are GPT's as Megatron-LM builds them without Transformer Engine (LayerNorm, QKV and
projection with bias, causal flash SDPA, dropout 0.1 on the residual paths, GELU MLP 4h), bf16,
forward and backward, no optimizer. Run on a GPU machine with PyTorch:

  python3 bench/eager_gap.py [--out FILE.json]

It prints one line per shape and a JSON summary. Needs PyTorch with CUDA; nothing else.

  python3 bench/eager_gap.py --variants [--out FILE.json]

times H1's step instead (eager, forward and backward) with the two Megatron defaults its published run
most likely had and capscale prices as follows: attention dropout 0.1 (Megatron's --attention-dropout;
capscale charges nothing for it) and selective recompute of the core attention (one more attention
forward in the backward, which capscale charges). Each variant's time over the plain step says what
they cost on this GPU's SDPA kernels (docs/validation.md, "A fixed per-op gap"; H1 is +18 %).
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

PLAN_OPS_PER_LAYER = 22  # capscale's plan: compute-stream ops of one layer, forward + backward
PLAN_OPS_OUTSIDE = 6     # embedding fwd/bwd, final norm fwd/bwd, logits fwd/dgrad/wgrad, loss: counted loosely


class Layer(torch.nn.Module):
    def __init__(self, h, heads, attn_dropout=0.0, recompute_attn=False):
        super().__init__()
        self.heads = heads
        self.attn_dropout = attn_dropout
        self.recompute_attn = recompute_attn
        self.ln1 = torch.nn.LayerNorm(h)
        self.qkv = torch.nn.Linear(h, 3 * h)
        self.proj = torch.nn.Linear(h, h)
        self.ln2 = torch.nn.LayerNorm(h)
        self.fc1 = torch.nn.Linear(h, 4 * h)
        self.fc2 = torch.nn.Linear(4 * h, h)

    def forward(self, x):  # x: [b, s, h]
        b, s, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0

        def core(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)

        # Megatron's selective recompute: the core attention's forward runs again in the backward.
        a = torch.utils.checkpoint.checkpoint(core, q, k, v, use_reentrant=False) if self.recompute_attn else core(q, k, v)
        a = a.transpose(1, 2).reshape(b, s, h)
        x = x + F.dropout(self.proj(a), 0.1, self.training)
        return x + F.dropout(self.fc2(F.gelu(self.fc1(self.ln2(x)))), 0.1, self.training)


class Gpt(torch.nn.Module):
    def __init__(self, layers, h, heads, vocab, attn_dropout=0.0, recompute_attn=False):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, h)
        self.layers = torch.nn.ModuleList(Layer(h, heads, attn_dropout, recompute_attn) for _ in range(layers))
        self.ln = torch.nn.LayerNorm(h)
        self.out = torch.nn.Linear(h, vocab, bias=False)

    def forward(self, tokens, labels):
        x = self.emb(tokens)
        for layer in self.layers:
            x = layer(x)
        logits = self.out(self.ln(x)).float()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))


def measure(layers, h, heads, seq, vocab, reps):
    torch.manual_seed(0)
    model = Gpt(layers, h, heads, vocab).cuda().to(torch.bfloat16)
    tokens = torch.randint(0, vocab, (1, seq), device="cuda")
    labels = torch.randint(0, vocab, (1, seq), device="cuda")

    def step():
        loss = model(tokens, labels)
        loss.backward()
        return loss

    # Warm up on a side stream (required before graph capture), then eager timing.
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()

    def timed(fn):
        times = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        times.sort()
        return times[len(times) // 2]

    eager = timed(step)
    # The same step captured once (gradients accumulate into the same .grad tensors in both).
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            step()
        replay = timed(graph.replay)
    except Exception as e:
        print(f"# h {h}: graph capture failed ({e}); eager {eager * 1e3:.2f} ms", flush=True)
        return {"layers": layers, "hidden": h, "eager_s": eager, "error": str(e)}
    # Kernels per eager step, to relate plan ops to real kernels (informational).
    kernels = None
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        kernels = sum(1 for e in prof.events() if str(getattr(e, "device_type", "")).endswith("CUDA"))
    except Exception as e:  # the count is informational
        print(f"# kernel count unavailable: {e}", file=sys.stderr)
    plan_ops = layers * PLAN_OPS_PER_LAYER + PLAN_OPS_OUTSIDE
    gap = (eager - replay) / plan_ops
    row = {"layers": layers, "hidden": h, "heads": heads, "seq": seq, "vocab": vocab, "eager_s": eager,
           "graph_s": replay, "plan_ops": plan_ops, "kernels": kernels, "gap_per_plan_op_us": gap * 1e6,
           "gap_per_kernel_us": (eager - replay) / kernels * 1e6 if kernels else None}
    print(f"h {h:5d} layers {layers:3d} seq {seq}: eager {eager * 1e3:8.2f} ms, graph {replay * 1e3:8.2f} ms, "
          f"idle {(eager - replay) * 1e3:7.2f} ms ({100 * (eager - replay) / eager:4.1f} %), {kernels} kernels, "
          f"gap {gap * 1e6:6.2f} us per plan op", flush=True)
    del model, graph
    torch.cuda.empty_cache()
    return row


def eager_step_s(attn_dropout, recompute_attn, reps, layers=24, h=2048, heads=16, seq=4096, vocab=131072):
    """Median eager forward + backward time of H1's model with the given attention settings."""
    torch.manual_seed(0)
    model = Gpt(layers, h, heads, vocab, attn_dropout, recompute_attn).cuda().to(torch.bfloat16)
    tokens = torch.randint(0, vocab, (1, seq), device="cuda")
    labels = torch.randint(0, vocab, (1, seq), device="cuda")
    for _ in range(3):
        model(tokens, labels).backward()
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(tokens, labels).backward()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    del model
    torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def variants(reps):
    rows = []
    for dropout, recompute in [(0.0, False), (0.1, False), (0.0, True), (0.1, True)]:
        t = eager_step_s(dropout, recompute, reps)
        rows.append({"attention_dropout": dropout, "recompute_attention": recompute, "eager_s": t})
        print(f"attention dropout {dropout:.1f}, recompute attention {str(recompute):5}: {t * 1e3:8.2f} ms "
              f"({t / rows[0]['eager_s']:.3f} of the plain step)", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--variants", action="store_true",
                    help="H1's step with attention dropout 0.1 and/or recomputed attention, against the plain step")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("eager_gap.py: no CUDA device", file=sys.stderr)
        return 1
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}", flush=True)
    if a.variants:
        rows = variants(a.reps)
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "variants": rows}, f, indent=1)
        return 0
    rows = []
    # The Megatron-Core README's 1.7B (row H1: h 2048, 16 heads, 24 layers, vocab 131072, seq 4096), then
    # wider layers, to see whether the gap per op is a fixed time (the cost model's assumption).
    for layers, h, heads in [(24, 2048, 16), (8, 4096, 32), (4, 8192, 64)]:
        rows.append(measure(layers, h, heads, 4096, 131072, a.reps))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
