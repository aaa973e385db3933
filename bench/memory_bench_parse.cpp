#include "bench/memory_bench_parse.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace forkvm::bench {

const char* const kMemoryBenchUsage =
    "usage: forkvm-bench memory [-k N] [--memory MiB] [--vcpus N] [--working-set MiB]\n"
    "                           [--accesses N] [--no-fork] [--memwalk PATH] [--image-dir DIR]\n"
    "                           [--timeout S] [--json]\n"
    "  a guest memory-bound workload (a static pointer chase over one line per page of\n"
    "  --working-set MiB, TLB-bound, and a sequential read; timed in the guest) on each RAM\n"
    "  backing (memfd, memfd with MADV_HUGEPAGE, anonymous), booted in the same run and run\n"
    "  -k times each, interleaved; p50/p90 per backing, ratio to memfd, the host's THP settings\n"
    "  and the huge pages each VM's RAM got; then a Sandbox::fork of the memfd-huge VM: bytes\n"
    "  copied by the fork and the child's workload beside its parent's.\n";

MemoryBenchOptions parse_memory_options(std::span<char* const> args, const std::string& image_dir,
                                        const std::string& memwalk) {
  MemoryBenchOptions o;
  o.image_dir = image_dir;
  o.memwalk = memwalk;
  o.n = 5;
  o.timeout_s = 300;
  parse_guest_bench_options(args, o, [&o](const std::string& a, const std::function<std::string()>& next) {
    if (a == "-k") o.n = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--working-set") o.working_set_mib = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--accesses") o.accesses = std::stoull(next());
    else if (a == "--memwalk") o.memwalk = next();
    else if (a == "--no-fork") o.fork = false;
    else if (a == "--json") o.json = true;
    else return false;
    return true;
  });
  if (o.n == 0) throw std::runtime_error("-k must be at least 1");
  if (o.vcpus == 0) throw std::runtime_error("--vcpus must be at least 1");
  if (o.memory_mib < 128 || o.memory_mib > 4096) throw std::runtime_error("--memory must be 128..4096 MiB");
  if (o.working_set_mib == 0 || o.working_set_mib + 96 > o.memory_mib) {
    throw std::runtime_error("--working-set must be 1..(--memory - 96) MiB: the guest needs the rest");
  }
  if (o.accesses == 0 || o.accesses > 10000000000ull) throw std::runtime_error("--accesses must be 1..10^10");
  if (!(o.timeout_s > 0)) throw std::runtime_error("--timeout must be positive");
  return o;
}

namespace {

/// The value of "key=VALUE" (up to the next space or line end) in `out`, or nullopt.
std::optional<std::string_view> field(std::string_view out, std::string_view key) {
  size_t at = 0;
  while ((at = out.find(key, at)) != std::string_view::npos) {
    const bool starts_word = at == 0 || out[at - 1] == ' ';
    const size_t value = at + key.size();
    if (starts_word && value < out.size() && out[value] == '=') {
      const size_t end = out.find_first_of(" \n", value + 1);
      return out.substr(value + 1, end == std::string_view::npos ? std::string_view::npos : end - value - 1);
    }
    at = value;
  }
  return std::nullopt;
}

std::optional<double> positive(std::optional<std::string_view> text) {
  if (!text || text->empty() || text->size() > 32) return std::nullopt;
  const std::string s(*text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v) || v <= 0 || v >= 1e9) return std::nullopt;
  return v;
}

}  // namespace

std::optional<MemwalkSample> parse_memwalk_line(std::string_view out) {
  if (out.rfind("memwalk ", 0) != 0) return std::nullopt;
  const auto chase = positive(field(out, "chase_ns"));
  const auto seq = positive(field(out, "seq_ns_per_page"));
  const auto thp = field(out, "guest_thp");
  if (!chase || !seq || !thp || thp->empty() || thp->size() > 31) return std::nullopt;
  for (const char c : *thp) {
    if (c < 0x21 || c > 0x7e) return std::nullopt;
  }
  return MemwalkSample{*chase, *seq, std::string(*thp)};
}

}  // namespace forkvm::bench
