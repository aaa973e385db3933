#include "bench/guest_bench_options.hpp"

namespace forkvm::bench {

void parse_guest_bench_options(
    std::span<char* const> args, GuestBenchOptions& o,
    const std::function<bool(const std::string&, const std::function<std::string()>&)>& extra) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string a = args[i];
    const std::function<std::string()> next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::runtime_error(a + " needs a value");
      return args[++i];
    };
    if (a == "-n") o.n = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--vcpus") o.vcpus = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--memory") o.memory_mib = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--image-dir") o.image_dir = next();
    else if (a == "--timeout") o.timeout_s = std::stod(next());
    else if (a == "--no-qemu") o.qemu = false;
    else if (!extra || !extra(a, next)) throw std::runtime_error("unknown option " + a);
  }
  if (o.n == 0) throw std::runtime_error("-n must be at least 1");
}

}  // namespace forkvm::bench
