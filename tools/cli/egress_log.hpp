// --egress-log FILE: every request through a sandbox's egress proxy as one JSON line:
//   {"time":"2026-12-02T17:50:01.123Z","method":"GET","host":"pypi.org","port":443,
//    "address":"151.101.0.223","decision":"allow","rule":"rule 0: allow pypi.org",
//    "status":200,"bytes_up":517,"bytes_down":48213,"error":""}
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "forkvm/egress.hpp"

namespace forkvm::cli {

/// The JSON line (with its newline) for one event.
std::string egress_event_json(const EgressEvent& event);

/// An open log file; audit() may be called from the network thread while the CLI runs.
class EgressLog {
 public:
  /// Opens `path` for appending. Throws forkvm::ConfigError when it cannot.
  explicit EgressLog(const std::string& path);
  ~EgressLog();
  EgressLog(const EgressLog&) = delete;
  EgressLog& operator=(const EgressLog&) = delete;
  /// Appends one event and flushes it.
  void audit(const EgressEvent& event);

 private:
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
};

}  // namespace forkvm::cli
