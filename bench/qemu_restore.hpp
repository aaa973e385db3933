// The same-run reference of `forkvm-bench restore`: QEMU -M microvm with KVM restoring a guest
// of the same kernel, initramfs, vCPUs and RAM from its own migration file.
//
// prepare(): QEMU boots the guest with the serial responder (serial_responder.hpp) as its
// forkvm.run, the host waits for the responder's ready line and one answered request, then
// QMP `migrate` to "exec:cat > FILE" (QEMU 7.2 has no `file:` URI; it came in 8.2) while the
// guest runs (a stopped source would give a destination that stays paused: QEMU carries the
// run state over), waits for "completed" and quits.
//
// restore_once(): starts the same command line plus `-incoming "exec:cat FILE"` and a QMP
// socket, and times from the spawn of the process: the QMP greeting, the guest running
// (query-status says so, or the RESUME event: the migration stream was loaded and QEMU
// started the vCPUs by itself), and the responder's answer to one request line written to the
// serial port once the guest runs (the guest reads it, forks and execs /bin/true, and answers).
// Requests are written only once the guest runs, because bytes reaching the UART while the
// migration stream loads would be overwritten by the loaded UART state.
//
// QEMU is started with posix_spawn (no fork of this process, which may hold KVM VMs and large
// guest mappings: see boot_bench.cpp for what fork() did in kvm-lab), its console on a pipe
// (-serial stdio), its stderr in a file of the scratch directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/qemu_reference.hpp"

namespace forkvm::bench {

/// One restore, in ms from the spawn of the QEMU process.
struct QemuRestoreSample {
  double qmp_ms = 0;      ///< the QMP greeting was read (the process is up and listening)
  double running_ms = 0;  ///< QEMU reports the guest running (migration loaded, vCPUs started)
  double answer_ms = 0;   ///< the answer to the request sent at running_ms arrived
};

class QemuRestoreReference {
 public:
  /// `boot` gives QEMU, kernel, initramfs, vCPUs, RAM and the deadline of each step; `dir` a
  /// private scratch directory for the migration file, QMP sockets and QEMU's stderr.
  QemuRestoreReference(QemuBoot boot, std::string dir);

  /// Boots the source guest, checks the responder answers, writes the migration file and
  /// stops QEMU. Throws std::runtime_error (with QEMU's console or stderr tail).
  void prepare();
  /// One timed restore (see the file comment); QEMU is quit and reaped before it returns.
  /// `round` numbers the request (>= 1). Throws std::runtime_error (with the tails).
  QemuRestoreSample restore_once(unsigned round);

  /// QEMU's version as its QMP greeting gave it (after prepare()).
  const std::string& version() const noexcept { return version_; }
  /// The migration file's size (after prepare()).
  uint64_t migration_file_bytes() const noexcept { return migration_bytes_; }
  /// prepare()'s source boot (spawn -> responder answered) and migration, in ms.
  double source_boot_ms() const noexcept { return source_boot_ms_; }
  double migrate_ms() const noexcept { return migrate_ms_; }
  /// A restore's command line as one line of text, for the report.
  std::string restore_command_text() const;

 private:
  std::vector<std::string> argv(const std::string& qmp_socket, bool incoming) const;

  QemuBoot boot_;
  std::string dir_;
  std::string migration_file_;
  std::string version_;
  uint64_t migration_bytes_ = 0;
  double source_boot_ms_ = 0;
  double migrate_ms_ = 0;
};

}  // namespace forkvm::bench
