// The encoding of `forkvm.run=<command>` on the kernel command line: percent-escaping. The
// host encodes (here); the agent decodes (guest-init/run_command.hpp).
//
// The command is the value with every "%XX" (two hex digits, either case) replaced by that
// byte; every other byte stands for itself. The kernel splits the command line on whitespace
// outside double quotes and strips one level of quotes, so a simple command can be written as
// forkvm.run="echo hello" and anything else, including spaces, quotes, '%' and newlines, can
// be escaped: forkvm.run=echo%20%22hi%22. A '%' not followed by two hex digits, or a decoded
// NUL byte, is an error. ('+' is not a space: this is not HTML form encoding.)
#pragma once

#include <string>
#include <string_view>

namespace forkvm {

/// Whether `c` stands for itself in an encoded command: [A-Za-z0-9] and "-._~/,:=+@".
inline bool run_command_unreserved(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~/,:=+@").find(c) != std::string_view::npos;
}

/// Encodes a shell command for forkvm.run: every byte outside the unreserved set becomes %XX,
/// so the result has no whitespace or quotes and survives the kernel's parsing.
inline std::string encode_run_command(std::string_view command) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(command.size());
  for (char c : command) {
    if (run_command_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

}  // namespace forkvm
