// Predictor budgets (DESIGN.md), measured as ratios in one run:
// - predict time and peak memory flat in the chip count: the same model and plan shape at 8, 16,
//   10^6 and 10^9 chips, each case in a forked child so that its peak RSS (wait4's rusage) is its
//   own, within 1.5× of 16 chips (8 chips is dp 1, with no DP traffic: shown, cheaper);
// - one predict evaluation ≤ 2 ms: Llama 3.1 405B on 16,384 H100 (tp 8, pp 16) and GPT-3 175B on
//   1,024 A100 with vpp 2 and global batch 1,536 (tp 8, pp 8 as in Narayanan et al. SC21 Table 1);
// - 10,000 predicted points in ≤ 60 s within 200 MB on 2 cores;
// - one plan search ≤ 1 s: Llama 3.1 70B on 1,024 H100, one sequence per chip (predict's default
//   batch when searching), every knob free; an MoE search ≤ 2 s: DeepSeek-V3 (MoE, MLA, MTP; every
//   ep as well) on the same chips at sequence 4,096, whose plans cost ~2 ms each to time.
// Each figure is printed with its ratio to the budget (≤ 1 meets it) and to the 8-chip baseline.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "common/stats.hpp"
#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "predict/predictor.hpp"

using namespace capscale;

template <typename F>
static double time_ms(F f, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

namespace {

struct Scaled {
  double ms = 0, rss_mb = 0, step_s = 0;
};

// 405B, tp 8, pp 1, full recompute, 16 micro-batches per pipeline: the plan is the same at every
// chip count; only dp (and with it the global batch) grows.
Scaled predict_in_child(int64_t gpus) {
  int fd[2];
  if (pipe(fd) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    const auto model = config::load_model("llama3.1-405b");
    const auto chip = config::load_chip("h100");
    config::ParallelConfig p;
    p.tp = 8, p.pp = 1, p.micro_batch_size = 1, p.global_batch_size = 16 * (gpus / 8), p.seq_length = 8192;
    p.recompute = config::Recompute::kFull, p.sequence_parallel = true, p.zero = 1;
    p = config::resolve(p, model, gpus, "bench");
    Scaled s;
    s.ms = time_ms([&] { s.step_s = predict::predict(model, chip, p).row.step_time_s; }, 21);
    if (write(fd[1], &s, sizeof s) != ssize_t(sizeof s)) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  Scaled s;
  const bool got = read(fd[0], &s, sizeof s) == ssize_t(sizeof s);
  close(fd[0]);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  s.rss_mb = double(ru.ru_maxrss) / 1024.0;
  return s;
}

}  // namespace

int main() {
  // Forked first, while this process is still small: a child's peak RSS includes what it inherits.
  // 8 chips is dp 1: no DP traffic to simulate, so it is cheaper than any larger cluster; the
  // flatness budget is held from 16 chips (dp 2, the same plan shape as 10^9 chips) up.
  const int64_t sizes[] = {8, 16, 1'000'000, 1'000'000'000};
  constexpr size_t kFlatBase = 1;
  std::vector<Scaled> scaled;
  for (int64_t g : sizes) scaled.push_back(predict_in_child(g));

  const auto model = config::load_model("llama3.1-405b");
  const auto chip = config::load_chip("h100");
  config::ParallelConfig p;
  p.tp = 8, p.pp = 16, p.cp = 1, p.micro_batch_size = 1, p.global_batch_size = 2048, p.seq_length = 8192;
  p.sequence_parallel = true, p.zero = 1;
  const auto big = config::resolve(p, model, 16384, "bench");
  config::ParallelConfig small = p;
  small.pp = 1, small.global_batch_size = 16, small.recompute = config::Recompute::kFull;
  small = config::resolve(small, model, 8, "bench");
  // GPT-3 175B as in SC21 Table 1 (1,024 A100, tp 8, pp 8, batch 1,536, full recompute), with the
  // interleaved schedule (vpp 2) and unfused attention (SC21 predates flash attention).
  const auto m175 = config::load_model("gpt3-175b");
  const auto a100 = config::load_chip("a100");
  config::ParallelConfig q;
  q.tp = 8, q.pp = 8, q.vpp = 2, q.micro_batch_size = 1, q.global_batch_size = 1536;
  q.recompute = config::Recompute::kFull, q.flash_attention = false;
  q = config::resolve(q, m175, 1024, "bench");

  double step = 0, step175 = 0;
  const double small_ms = time_ms([&] { predict::predict(model, chip, small); }, 15);
  const double big_ms = time_ms([&] { step = predict::predict(model, chip, big).row.step_time_s; }, 15);
  const double gpt_ms = time_ms([&] { step175 = predict::predict(m175, a100, q).row.step_time_s; }, 15);
  std::printf("# capscale bench predict (medians)\n");
  std::printf("#%-46s %10s %10s %12s %12s\n", " case", "time [ms]", "budget", "time/budget", "/baseline");
  std::printf(" %-46s %10.3f %10s %12s %12s\n", "baseline: 405B, 8 chips, tp8 pp1, 16 seq", small_ms, "-", "-", "1.0");
  std::printf(" %-46s %10.3f %10.0f %12.3f %12.1f   (step %.3f s)\n", "405B, 16384 H100, tp8 pp16, 2048 seq", big_ms, 2.0,
              big_ms / 2.0, big_ms / small_ms, step);
  std::printf(" %-46s %10.3f %10.0f %12.3f %12.1f   (step %.3f s)\n", "175B, 1024 A100, tp8 pp8 vpp2, 1536 seq", gpt_ms, 2.0,
              gpt_ms / 2.0, gpt_ms / small_ms, step175);

  // Flat in chip count: each case forked, time and peak RSS against the 8-chip case.
  std::printf("#%-46s %10s %10s %12s %12s\n", " 405B tp8 pp1, 16 micro-batches, chips", "time [ms]", "RSS [MB]", "time/16 chips",
              "RSS/16 chips");
  bool flat = true;
  for (size_t i = 0; i < scaled.size(); ++i) {
    const double tr = scaled[i].ms / scaled[kFlatBase].ms, mr = scaled[i].rss_mb / scaled[kFlatBase].rss_mb;
    if (scaled[i].ms <= 0 || (i >= kFlatBase && (tr > 1.5 || mr > 1.5))) flat = false;
    char label[64];
    std::snprintf(label, sizeof label, "%lld chips", static_cast<long long>(sizes[i]));
    std::printf(" %-46s %10.3f %10.1f %12.2f %12.2f   (step %.3f s)\n", label, scaled[i].ms, scaled[i].rss_mb, tr, mr, scaled[i].step_s);
  }

  // 10,000 points: 70B on H100/H20/H800/B200 at 8..16384 chips with a spread of plans.
  const auto m70 = config::load_model("llama3.1-70b");
  std::vector<config::ChipProfile> chips;
  for (const char* c : {"h100", "h20", "h800", "b200", "a800"}) chips.push_back(config::load_chip(c));
  const auto t0 = std::chrono::steady_clock::now();
  int points = 0, valid = 0;
  while (points < 10000) {
    for (const auto& c : chips)
      for (int64_t gpus = 64; gpus <= 16384 && points < 10000; gpus *= 2)
        for (int64_t tp : {2, 4, 8})
          for (int64_t pp : {1, 2, 4, 8})
            for (int64_t mbs : {1, 2}) {
              if (points >= 10000) break;
              ++points;
              config::ParallelConfig r;
              r.tp = tp, r.pp = pp, r.micro_batch_size = mbs, r.global_batch_size = std::max<int64_t>(gpus / 4, 64) / (mbs * 8) * mbs * 8;
              r.seq_length = 4096, r.sequence_parallel = true, r.zero = 1, r.recompute = config::Recompute::kSelective;
              if (!config::violations(r, m70, gpus).empty()) continue;
              predict::predict(m70, c, config::resolve(r, m70, gpus, "bench"));
              ++valid;
            }
  }
  const double sweep_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = double(ru.ru_maxrss) / 1024.0;
  std::printf("#%-46s %10s %10s %12s\n", " sweep", "value", "budget", "value/budget");
  std::printf(" %-46s %10.2f %10.0f %12.3f   (%d of them valid plans)\n", "10,000 points [s]", sweep_s, 60.0, sweep_s / 60.0, valid);
  std::printf(" %-46s %10.1f %10.0f %12.3f\n", "peak RSS [MB]", rss_mb, 200.0, rss_mb / 200.0);

  // The plan search, as `capscale predict --model llama3.1-70b --chip h100 --gpus 1024` runs it.
  predict::SearchOptions so;
  so.gpus = 1024, so.global_batch_size = 1024;
  predict::SearchResult found;
  const double search_s = time_ms([&] { found = predict::search(m70, chips[0], so); }, 3) / 1e3;
  std::printf(" %-46s %10.3f %10.0f %12.3f   (%lld shapes, %lld fit, %lld timed; best %s)\n", "search 1,024 chips [s]", search_s,
              1.0, search_s / 1.0, static_cast<long long>(found.shapes), static_cast<long long>(found.fitting),
              static_cast<long long>(found.evaluated),
              found.ranked.empty() ? "none" : config::parallel_text(found.ranked[0].parallel).c_str());
  // The same search for an MoE model with MLA and MTP (DeepSeek-V3, every ep as well), with its
  // ratio to the dense search too.
  const auto v3 = config::load_model("deepseek-v3");
  so.seq_length = 4096;
  predict::SearchResult moe;
  const double moe_s = time_ms([&] { moe = predict::search(v3, chips[0], so); }, 3) / 1e3;
  std::printf(" %-46s %10.3f %10.0f %12.3f   (%.1fx the dense search; %lld shapes, %lld fit, %lld timed; best %s)\n",
              "search DeepSeek-V3, 1,024 chips [s]", moe_s, 2.0, moe_s / 2.0, moe_s / search_s, static_cast<long long>(moe.shapes),
              static_cast<long long>(moe.fitting), static_cast<long long>(moe.evaluated),
              moe.ranked.empty() ? "none" : config::parallel_text(moe.ranked[0].parallel).c_str());
  const bool ok = big_ms <= 2 && gpt_ms <= 2 && flat && sweep_s <= 60 && rss_mb <= 200 && search_s <= 1 && moe_s <= 2;
  std::printf("# verdict: %s%s\n", ok ? "all within budget" : "OVER BUDGET", flat ? "" : " (not flat in chip count)");
  return 0;
}
