// Where a file holds data and where holes, from the kernel (lseek SEEK_DATA/SEEK_HOLE), without
// reading it: what the snapshot writer, the digests and GuestMemory::data_extents() skip holes by.
#pragma once

#include <cstdint>
#include <vector>

namespace forkvm {

/// A byte range of a file or of guest memory.
struct FileExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const FileExtent&) const = default;
};

/// Appends to `out` the data (not hole) extents of the bytes [begin, end) of `fd`, in order,
/// clipped to the range. A file system without SEEK_DATA reports all of the range as data, and
/// a hole found past the file's end (a shorter file) ends the walk. Returns 0, or the errno of
/// a failed lseek (`out` then holds the extents found before it).
int file_data_extents(int fd, uint64_t begin, uint64_t end, std::vector<FileExtent>& out);

}  // namespace forkvm
