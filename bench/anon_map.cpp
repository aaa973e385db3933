#include "bench/anon_map.hpp"

#include <dirent.h>

#include <cctype>
#include <charconv>
#include <stdexcept>
#include <string>

#include "bench/proc_status.hpp"

namespace forkvm::bench {
namespace {

bool parse_hex(std::string_view s, uint64_t& out) {
  if (s.starts_with("0x")) s.remove_prefix(2);
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && end == s.data() + s.size();
}

/// "start-end perms offset dev inode [pathname]": the range and the pathname (may be empty).
bool parse_header(std::string_view line, uint64_t& start, uint64_t& end, std::string_view& path) {
  const size_t sp = line.find(' ');
  const std::string_view range = line.substr(0, sp);
  const size_t dash = range.find('-');
  if (sp == std::string_view::npos || dash == std::string_view::npos) return false;
  if (!parse_hex(range.substr(0, dash), start) || !parse_hex(range.substr(dash + 1), end)) return false;
  // Four fields after the range, then the pathname (which may contain spaces).
  std::string_view rest = line.substr(sp);
  for (int field = 0; field < 4; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const size_t next = rest.find(' ');
    if (rest.empty()) return false;
    rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next);
  }
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  path = rest;
  return true;
}

}  // namespace

AnonBreakdown anon_breakdown_from(std::string_view smaps, const std::vector<uint64_t>& stack_pointers) {
  AnonBreakdown out;
  uint64_t* target = nullptr;  // the current mapping's bucket
  while (!smaps.empty()) {
    const size_t eol = smaps.find('\n');
    const std::string_view line = smaps.substr(0, eol);
    smaps = eol == std::string_view::npos ? std::string_view{} : smaps.substr(eol + 1);
    uint64_t start = 0, end = 0;
    std::string_view path;
    if (parse_header(line, start, end, path)) {
      ++out.mappings;
      bool holds_sp = false;
      for (const uint64_t sp : stack_pointers) holds_sp = holds_sp || (sp >= start && sp < end);
      if (holds_sp || path == "[stack]") {
        target = &out.stacks;
      } else if (path == "[heap]") {
        target = &out.heap;
      } else if (path.starts_with("/")) {
        target = &out.file_private;
      } else {
        target = &out.other;
      }
      continue;
    }
    if (target == nullptr || !line.starts_with("Anonymous:")) continue;
    const auto kb = parse_kb_lines(line);
    if (const auto it = kb.find("Anonymous"); it != kb.end()) *target += it->second;
  }
  return out;
}

std::vector<uint64_t> thread_stack_pointers() {
  std::vector<uint64_t> out;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    std::string text;
    try {
      text = read_text(std::string("/proc/self/task/") + e->d_name + "/syscall");
    } catch (const std::runtime_error&) {
      continue;  // the thread ended meanwhile
    }
    // "nr arg1 .. arg6 sp pc" while blocked in a call; "running" or "-1 sp pc" otherwise.
    std::vector<std::string_view> fields;
    std::string_view t = text;
    while (!t.empty()) {
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
      const size_t n = std::min(t.find_first_of(" \n"), t.size());
      if (n > 0) fields.push_back(t.substr(0, n));
      t.remove_prefix(n);
    }
    uint64_t sp = 0;
    if (fields.size() >= 3 && parse_hex(fields[fields.size() - 2], sp)) out.push_back(sp);
  }
  ::closedir(d);
  return out;
}

AnonBreakdown read_anon_breakdown() {
  const std::vector<uint64_t> sps = thread_stack_pointers();
  return anon_breakdown_from(read_text("/proc/self/smaps"), sps);
}

}  // namespace forkvm::bench
