// Distributions for benchmark output: samples in milliseconds, summarized as min/p50/p90/p99/max.
#pragma once

#include <string>
#include <vector>

namespace forkvm::bench {

/// Summary of a set of samples.
struct Summary {
  size_t n = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

/// Summarizes `samples` (any order); nearest-rank percentiles. Empty input gives n == 0.
Summary summarize(std::vector<double> samples);

/// One aligned line: "<label>  n=.. min .. p50 .. p90 .. p99 .. max .. (<unit>)".
std::string format_row(const std::string& label, const Summary& s, const std::string& unit = "ms");

}  // namespace forkvm::bench
