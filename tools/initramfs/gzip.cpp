#include "tools/initramfs/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <string>

#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

constexpr int kLevel = 9;
constexpr int kGzipWindowBits = 15 + 16;  // 32 KiB window, +16 selects the gzip wrapper
constexpr int kMemLevel = 8;
constexpr int kOsUnix = 3;                // RFC 1952 §2.3.1
constexpr size_t kChunk = 1 << 20;        // zlib counts in uInt: feed it bounded pieces

[[noreturn]] void fail(const char* what, int rc) {
  throw ImageError("<gzip>", std::string(what) + " failed (zlib error " + std::to_string(rc) + ")");
}

}  // namespace

std::vector<uint8_t> gzip_compress(std::span<const uint8_t> data) {
  z_stream zs{};
  int rc = deflateInit2(&zs, kLevel, Z_DEFLATED, kGzipWindowBits, kMemLevel, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) fail("deflateInit2", rc);
  // A zeroed header: mtime 0, no name, no comment, no extra field.
  gz_header header{};
  header.os = kOsUnix;
  rc = deflateSetHeader(&zs, &header);
  if (rc != Z_OK) {
    deflateEnd(&zs);
    fail("deflateSetHeader", rc);
  }

  std::vector<uint8_t> out(deflateBound(&zs, static_cast<uLong>(std::min(data.size(), kChunk))));
  size_t consumed = 0;
  size_t produced = 0;
  for (;;) {
    const size_t in_len = std::min(data.size() - consumed, kChunk);
    // zlib's API is not const-correct; it never writes through next_in.
    zs.next_in = const_cast<Bytef*>(data.data() + consumed);
    zs.avail_in = static_cast<uInt>(in_len);
    const bool last = consumed + in_len == data.size();
    do {
      if (out.size() - produced < kChunk / 4) out.resize(out.size() + kChunk);
      zs.next_out = out.data() + produced;
      zs.avail_out = static_cast<uInt>(std::min(out.size() - produced, kChunk));
      const uInt before = zs.avail_out;
      rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
      if (rc == Z_STREAM_ERROR) {
        deflateEnd(&zs);
        fail("deflate", rc);
      }
      produced += before - zs.avail_out;
    } while (zs.avail_out == 0 || (last && rc != Z_STREAM_END));
    consumed += in_len;
    if (last) break;
  }
  deflateEnd(&zs);
  out.resize(produced);
  return out;
}

}  // namespace forkvm
