// A DiskConfig in one expression for tests (DiskConfig has more fields than most tests set, and
// -Wmissing-field-initializers refuses brace-initialising only some of them).
#pragma once

#include <string>
#include <utility>

#include "forkvm/vm.hpp"

namespace forkvm::test {

/// A disk at `path`, read-only or not, with serial `id` ("" for the default).
inline DiskConfig disk_of(std::string path, bool read_only, std::string id) {
  DiskConfig d;
  d.path = std::move(path);
  d.read_only = read_only;
  d.id = std::move(id);
  return d;
}

/// A copy-on-write disk over the image at `path`, with serial `id`.
inline DiskConfig cow_disk_of(std::string path, std::string id) {
  DiskConfig d = disk_of(std::move(path), false, std::move(id));
  d.copy_on_write = true;
  return d;
}

}  // namespace forkvm::test
