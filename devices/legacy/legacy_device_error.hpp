// The error type of the legacy port-I/O devices (serial, i8042, boot signal). Only setup paths
// throw it, such as restoring a snapshot State that fails validation; guest accesses never do.
#pragma once

#include "forkvm/errors.hpp"

namespace forkvm {

/// A legacy device was handed an invalid State to restore (a FIFO longer than the device's,
/// register bits the hardware does not have, ...). The message names the device and the field.
/// States come from snapshots, so it is a SnapshotError: a restore path catches one type.
class LegacyDeviceError : public SnapshotError {
 public:
  using SnapshotError::SnapshotError;
};

}  // namespace forkvm
