// Predictor budgets (DESIGN.md): one prediction of a 405B model on 16,384 chips with pp 16 in
// ≤ 20 ms, and 10,000 predicted points in ≤ 60 s within 200 MB on 2 cores. Prints each figure and
// its ratio to the budget (≤ 1 meets it), plus the ratio to a baseline measured in the same run:
// the same prediction at 8 chips (pp 1), which shows how cost scales with pipeline depth and not
// with chip count.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "predict/predictor.hpp"

using namespace capscale;

static double median_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
static double time_ms(F f, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median_ms(t);
}

int main() {
  const auto model = config::load_model("llama3.1-405b");
  const auto chip = config::load_chip("h100");
  config::ParallelConfig p;
  p.tp = 8, p.pp = 16, p.cp = 1, p.micro_batch_size = 1, p.global_batch_size = 2048, p.seq_length = 8192;
  p.sequence_parallel = true, p.zero = 1;
  const auto big = config::resolve(p, model, 16384, "bench");
  config::ParallelConfig small = p;
  small.pp = 1, small.global_batch_size = 16, small.recompute = config::Recompute::kFull;
  small = config::resolve(small, model, 8, "bench");
  double step = 0;
  const double big_ms = time_ms([&] { step = predict::predict(model, chip, big).row.step_time_s; }, 9);
  const double small_ms = time_ms([&] { predict::predict(model, chip, small); }, 9);
  std::printf("# capscale bench predict (median of 9)\n");
  std::printf("#%-44s %10s %10s %12s\n", " case", "time [ms]", "budget", "time/budget");
  std::printf(" %-44s %10.2f %10s %12s\n", "baseline: 405B, 8 chips, tp8 pp1, 16 seq", small_ms, "-", "-");
  std::printf(" %-44s %10.2f %10.0f %12.3f   (%.1fx baseline; step %.2f s)\n", "405B, 16384 chips, tp8 pp16, 2048 seq", big_ms,
              20.0, big_ms / 20.0, big_ms / small_ms, step);

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
              config::ParallelConfig q;
              q.tp = tp, q.pp = pp, q.micro_batch_size = mbs, q.global_batch_size = std::max<int64_t>(gpus / 4, 64) / (mbs * 8) * mbs * 8;
              q.seq_length = 4096, q.sequence_parallel = true, q.zero = 1, q.recompute = config::Recompute::kSelective;
              if (!config::violations(q, m70, gpus).empty()) continue;
              predict::predict(m70, c, config::resolve(q, m70, gpus, "bench"));
              ++valid;
            }
  }
  const double sweep_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = double(ru.ru_maxrss) / 1024.0;
  std::printf(" %-44s %10.2f %10.0f %12.3f   (%d of them valid plans)\n", "10,000 points [s]", sweep_s, 60.0, sweep_s / 60.0, valid);
  std::printf(" %-44s %10.1f %10.0f %12.3f\n", "peak RSS [MB]", rss_mb, 200.0, rss_mb / 200.0);
  std::printf("# verdict: %s\n", big_ms <= 20 && sweep_s <= 60 && rss_mb <= 200 ? "all within budget" : "OVER BUDGET");
  return 0;
}
