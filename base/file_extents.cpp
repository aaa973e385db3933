#include "base/file_extents.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace forkvm {

int file_data_extents(int fd, uint64_t begin, uint64_t end, std::vector<FileExtent>& out) {
  for (uint64_t pos = begin; pos < end;) {
    const off_t d = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) return 0;  // only a hole is left (or the file ended)
      if (errno == EINVAL) {         // no SEEK_DATA here: all of it may be data
        out.push_back({pos, end - pos});
        return 0;
      }
      return errno;
    }
    const uint64_t data = std::min(end, static_cast<uint64_t>(d));
    if (data >= end) return 0;
    const off_t h = ::lseek(fd, static_cast<off_t>(data), SEEK_HOLE);
    // Every file ends in a hole (SEEK_HOLE at its end): one not past `data` means a file that
    // changed under the walk; the rest is then taken as data, which is safe for every reader.
    const uint64_t stop =
        h < 0 || static_cast<uint64_t>(h) <= data ? end : std::min(end, static_cast<uint64_t>(h));
    out.push_back({data, stop - data});
    pos = stop;
  }
  return 0;
}

}  // namespace forkvm
