#include "bench/fork_common.hpp"

#include <sys/resource.h>

#include <thread>

#include "forkvm/errors.hpp"

namespace forkvm::bench {

bool wait_pool_full(const Template& t, size_t want, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (t.pooled() < want) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

ForkedChild fork_and_exec(Template& t) {
  ForkedChild c;
  const auto t0 = Clock::now();
  c.sandbox = t.fork();
  c.fork_call_ms = ms_since(t0);
  const auto t1 = Clock::now();
  const ExecResult r = c.sandbox->exec({"true"});
  c.exec_ms = ms_since(t1);
  c.to_exec_ms = ms_since(t0);
  if (!r.ok()) {
    throw Error("exec [\"true\"] in a forked child did not exit 0 (" +
                (r.signal ? "signal " + std::to_string(*r.signal)
                          : "status " + std::to_string(r.exit_code.value_or(-1))) +
                ")");
  }
  return c;
}

double destroy_timed(std::unique_ptr<Sandbox> box) {
  const auto t0 = Clock::now();
  box->shutdown();
  box.reset();
  return ms_since(t0);
}

unsigned long raise_fd_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
    getrlimit(RLIMIT_NOFILE, &r);
  }
  return static_cast<unsigned long>(r.rlim_cur);
}

}  // namespace forkvm::bench
