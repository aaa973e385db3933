#include "bench/kvm_trace.hpp"

#include <sys/mount.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>

namespace forkvm::bench {
namespace {

/// The events kept: every exit and entry (with RIP), what KVM injects, and the faults it takes.
constexpr const char* kEvents[] = {"kvm_exit",     "kvm_entry",   "kvm_inj_exception",
                                   "kvm_inj_virq", "kvm_page_fault", "kvm_userspace_exit",
                                   "kvm_cr",       "kvm_msr"};
/// Enabled where the kernel has them: KVM's asynchronous page faults (a fault KVM finishes in a
/// kworker while the vCPU waits, then announces with vector 0xf3). A child that triple-faulted
/// had taken a 10 ms copy-on-write fault, then got vector 0xf3 (issue 11).
constexpr const char* kOptionalEvents[] = {"kvm_try_async_get_page", "kvm_async_pf_repeated_fault",
                                           "kvm_async_pf_not_present", "kvm_async_pf_ready",
                                           "kvm_async_pf_completed"};

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.flush();
  return static_cast<bool>(f);
}

}  // namespace

std::unique_ptr<KvmTrace> KvmTrace::start(std::string& why_not) {
  const std::string dir = "/sys/kernel/tracing";
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/trace", ec)) {
    if (::mount("nodev", dir.c_str(), "tracefs", 0, nullptr) != 0) {
      why_not = "cannot mount tracefs at " + dir + " (root needed)";
      return nullptr;
    }
  }
  if (!std::filesystem::exists(dir + "/events/kvm", ec)) {
    why_not = "no kvm trace events in " + dir;
    return nullptr;
  }
  std::unique_ptr<KvmTrace> t(new KvmTrace(dir));
  write_file(dir + "/tracing_on", "0");
  write_file(dir + "/trace", "");
  write_file(dir + "/buffer_size_kb", "16384");
  for (const char* e : kEvents) {
    if (!write_file(dir + "/events/kvm/" + e + "/enable", "1")) {
      why_not = std::string("cannot enable kvm/") + e;
      return nullptr;
    }
  }
  for (const char* e : kOptionalEvents) write_file(dir + "/events/kvm/" + e + "/enable", "1");
  write_file(dir + "/tracing_on", "1");
  return t;
}

KvmTrace::~KvmTrace() {
  write_file(dir_ + "/tracing_on", "0");
  for (const char* e : kEvents) write_file(dir_ + "/events/kvm/" + e + "/enable", "0");
  for (const char* e : kOptionalEvents) write_file(dir_ + "/events/kvm/" + e + "/enable", "0");
  write_file(dir_ + "/trace", "");
}

std::string KvmTrace::excerpt(int tid, size_t max_lines) {
  write_file(dir_ + "/tracing_on", "0");
  std::ifstream in(dir_ + "/trace");
  const std::string needle = "-" + std::to_string(tid) + " ";
  std::deque<std::string> kept;
  std::string line;
  while (std::getline(in, line)) {
    if (tid != 0 && line.find(needle) == std::string::npos) continue;
    kept.push_back(line);
    if (kept.size() > max_lines) kept.pop_front();
  }
  std::string out;
  for (const auto& l : kept) out += l + "\n";
  write_file(dir_ + "/trace", "");
  write_file(dir_ + "/tracing_on", "1");
  return out;
}

}  // namespace forkvm::bench
