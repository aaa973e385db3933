#include "bench/soak_cycle.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <utility>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/shell_pool.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// The parent's state that each of its forks must see: changed before every fork, so that
/// every freeze has written pages to add as a layer.
constexpr const char* kGenerationFile = "/tmp/soak-generation";
constexpr const char* kRoundTripFile = "/tmp/soak-file";
constexpr size_t kRoundTripBytes = 64 * 1024;

/// Every byte value, shifted per cycle, so that a stale or misplaced block shows.
std::string payload(unsigned cycle) {
  std::string data(kRoundTripBytes, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7 + cycle) & 0xff);
  return data;
}

/// Throws forkvm::Error unless `argv` exits 0 printing exactly `want`.
void expect_exec(Sandbox& s, const std::vector<std::string>& argv, const std::string& want) {
  const ExecResult r = s.exec(argv);
  if (!r.ok() || r.stdout_data != want) {
    throw Error(argv[0] + " answered '" + printable(r.stdout_data, 128) + "' (" +
                (r.exit_code ? "exit " + std::to_string(*r.exit_code)
                             : "signal " + std::to_string(r.signal.value_or(0))) +
                ", stderr '" + printable(r.stderr_data, 128) + "'), not '" + printable(want) + "'");
  }
}

/// The cycle's work in a fresh child: one exec (`argv` must print `want`) and a file written
/// and read back. `stage` says which part is running, for the error.
void use_child(Sandbox& child, unsigned cycle, const std::vector<std::string>& argv,
               const std::string& want, const char*& stage) {
  stage = "exec";
  expect_exec(child, argv, want);
  stage = "file round trip";
  const std::string data = payload(cycle);
  child.write_file(kRoundTripFile, data);
  const std::string back = child.read_file(kRoundTripFile);
  if (back != data) {
    throw Error("read back " + std::to_string(back.size()) + " bytes that differ from the " +
                std::to_string(data.size()) + " written");
  }
}

std::string failure(unsigned cycle, const char* who, const char* stage, const std::exception& e) {
  return "cycle " + std::to_string(cycle) + ", " + who + ", " + stage + ": " + e.what();
}

}  // namespace

SoakLoop::SoakLoop(std::shared_ptr<Template> tmpl, ForkConfig config, unsigned parent_every)
    : tmpl_(std::move(tmpl)), config_(std::move(config)), parent_every_(parent_every) {
  parent_ = tmpl_->fork(config_);
}

SoakLoop::~SoakLoop() { shutdown(); }

void SoakLoop::shutdown() {
  if (!parent_) return;
  parent_->shutdown();
  parent_.reset();
}

SoakCycleResult SoakLoop::run(unsigned cycle) {
  SoakCycleResult out;
  const char* stage = "fork";
  const auto t0 = Clock::now();
  try {
    const std::unique_ptr<Sandbox> child = tmpl_->fork(config_);
    const std::string token = "soak-" + std::to_string(cycle);
    use_child(*child, cycle, {"echo", token}, token + "\n", stage);
    stage = "shutdown";
    child->shutdown();
    out.cycle_ms = ms_since(t0);
  } catch (const std::exception& e) {
    out.errors.push_back(failure(cycle, "template child", stage, e));
  }
  if ((cycle + 1) % parent_every_ == 0) parent_round(cycle, out);
  return out;
}

void SoakLoop::parent_round(unsigned cycle, SoakCycleResult& out) {
  const char* stage = "replacing the parent";
  try {
    if (!parent_) parent_ = tmpl_->fork(config_);
    const std::string generation = "generation-" + std::to_string(++generation_) + "\n";
    const auto t0 = Clock::now();
    stage = "changing the parent";
    parent_->write_file(kGenerationFile, generation);
    stage = "Sandbox::fork";
    const std::unique_ptr<Sandbox> child = parent_->fork(config_);
    // The child must start from the parent's state at the fork: the generation just written.
    use_child(*child, cycle, {"cat", kGenerationFile}, generation, stage);
    stage = "shutdown";
    child->shutdown();
    out.parent_ms = ms_since(t0);
    stage = "the parent after the fork";
    expect_exec(*parent_, {"cat", kGenerationFile}, generation);
  } catch (const std::exception& e) {
    out.errors.push_back(failure(cycle, "parent round", stage, e));
    // A parent that no longer answers is replaced at the next round; one that does is kept
    // (the failure was its child's).
    if (parent_ && parent_->state() != SandboxState::kReady) shutdown();
  }
}

SoakCounters settled_soak_counters(const std::string& runtime_dir) {
  Sandbox::wait_for_teardowns();
  if (!wait_for_shell_pool(std::chrono::seconds(60))) {
    std::fprintf(stderr, "[soak] the shell pool was not full after 60 s (counted as it is)\n");
  }
  return read_soak_counters(runtime_dir);
}

}  // namespace forkvm::bench
