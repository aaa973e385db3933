#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace forkvm::bench {

Summary summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) {
    // Nearest rank: the smallest sample with at least p of the samples at or below it.
    const auto k = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(k, 1, v.size()) - 1];
  };
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  return s;
}

std::string format_row(const std::string& label, const Summary& s, const std::string& unit) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%-34s n=%-3zu min %10.3f  p50 %10.3f  p90 %10.3f  p99 %10.3f  max %10.3f  (%s)",
                label.c_str(), s.n, s.min, s.p50, s.p90, s.p99, s.max, unit.c_str());
  return buf;
}

}  // namespace forkvm::bench
