// Small text helpers for error and report messages, shared by every layer so that an address
// or an errno reads the same way wherever it is printed.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

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

/// A duration in messages: "250 ms".
inline std::string millis_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

/// The text of an errno value (strerror), e.g. "No such file or directory". Running out of
/// descriptors says what to raise: EMFILE (this process's RLIMIT_NOFILE; a VM holds a few
/// dozen, see forkvm::raise_open_file_limit()) and ENFILE (the system's fs.file-max).
inline std::string errno_text(int err) {
  std::string text = std::strerror(err);
  if (err == EMFILE) {
    text += " (the process's open-file limit: raise RLIMIT_NOFILE, e.g. `ulimit -n`, or call "
            "forkvm::raise_open_file_limit())";
  } else if (err == ENFILE) {
    text += " (the system's open-file table is full: raise fs.file-max)";
  }
  return text;
}

namespace text_detail {
/// Appends byte `u` to `out` as printable ASCII: itself when printable, "\\" for a backslash,
/// "\xNN" otherwise.
inline void append_escaped(std::string& out, unsigned char u) {
  static constexpr char kDigits[] = "0123456789abcdef";
  if (u == '\\') {
    out += "\\\\";
  } else if (u >= 0x20 && u < 0x7f) {
    out.push_back(static_cast<char>(u));
  } else {
    out += "\\x";
    out.push_back(kDigits[u >> 4]);
    out.push_back(kDigits[u & 0xf]);
  }
}
}  // namespace text_detail

/// `text` made safe to print, log or put in an error message: bytes outside printable ASCII
/// (control characters, DEL, anything >= 0x80, so no terminal escape sequence survives) become
/// "\xNN" and a backslash becomes "\\" (so the output is unambiguous); at most `max_bytes`
/// of the input are shown ("..." marks the cut). The one helper for text that came from a
/// guest, its agent or a peer (an agent's error message, a guest path in a message, ...):
/// the output is at most 4 * max_bytes + 3 bytes, whatever the input.
inline std::string printable(std::string_view text, size_t max_bytes = 256) {
  std::string out;
  const size_t shown = text.size() < max_bytes ? text.size() : max_bytes;
  out.reserve(shown);
  for (size_t i = 0; i < shown; ++i) text_detail::append_escaped(out, static_cast<unsigned char>(text[i]));
  if (shown < text.size()) out += "...";
  return out;
}

/// printable() for many lines of guest output, such as a console tail: the same escaping,
/// except that a line feed and a tab are kept and a carriage return before a line feed is
/// dropped (a serial console ends lines with "\r\n"). Keeps the *last* `max_bytes` of the
/// input ("..." at the start marks the cut): the end of a log says the most.
inline std::string printable_lines(std::string_view text, size_t max_bytes = 16 * 1024) {
  std::string out;
  const bool cut = text.size() > max_bytes;
  if (cut) {
    text.remove_prefix(text.size() - max_bytes);
    out += "...";
  }
  out.reserve(out.size() + text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u == '\n' || u == '\t') {
      out.push_back(static_cast<char>(u));
    } else if (u == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      continue;
    } else {
      text_detail::append_escaped(out, u);
    }
  }
  return out;
}

}  // namespace forkvm
