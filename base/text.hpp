// Small text helpers for error and report messages, shared by every layer so that an address
// or an errno reads the same way wherever it is printed.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace forkvm {

/// `v` as "0x" and lowercase hex digits without leading zeros ("0x0" for 0). Never throws
/// except std::bad_alloc.
inline std::string hex(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[2 + 16];
  size_t n = sizeof buf;
  do {
    buf[--n] = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  buf[--n] = 'x';
  buf[--n] = '0';
  return std::string(buf + n, sizeof buf - n);
}

/// The text of an errno value (strerror), e.g. "No such file or directory".
inline std::string errno_text(int err) { return std::strerror(err); }

}  // namespace forkvm
