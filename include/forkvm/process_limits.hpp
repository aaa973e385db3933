// The process-wide limit a host running many sandboxes meets first: open files. Each VM holds a
// few dozen descriptors (KVM's VM and vCPU fds, eventfds, guest memory, disks, sockets), so a
// default soft limit of 1024 ends at a few dozen live sandboxes. forkvm never raises it by
// itself (a program still using select() cannot watch descriptors above 1023); an error from
// running out says what to raise (EMFILE: RLIMIT_NOFILE, ENFILE: fs.file-max).
#pragma once

#include <cstdint>

namespace forkvm {

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (to fs.nr_open when the hard limit
/// is unlimited; never lowers it) and returns the soft limit now in force. Throws forkvm::Error
/// when getrlimit/setrlimit fail.
uint64_t raise_open_file_limit();

}  // namespace forkvm
