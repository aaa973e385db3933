#include "bench/proc_status.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "forkvm/errors.hpp"
#include "forkvm/process_limits.hpp"

namespace forkvm::bench {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> get(const std::map<std::string, uint64_t>& m, const char* name) {
  const auto it = m.find(name);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

}  // namespace

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, uint64_t> parse_kb_lines(std::string_view text) {
  std::map<std::string, uint64_t> out;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    const std::string_view name = line.substr(0, colon);
    std::string_view rest = trim(line.substr(colon + 1));
    // "<digits> kB" exactly.
    size_t digits = 0;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
    if (digits == 0 || digits > 15) continue;  // 15 digits of kB cannot overflow when scaled
    if (trim(rest.substr(digits)) != "kB") continue;
    uint64_t kb = 0;
    for (size_t i = 0; i < digits; ++i) kb = kb * 10 + static_cast<uint64_t>(rest[i] - '0');
    out[std::string(name)] = kb * 1024;
  }
  return out;
}

MemoryCounters memory_counters_from(std::string_view status_text, std::string_view meminfo_text) {
  const auto st = parse_kb_lines(status_text);
  const auto mi = parse_kb_lines(meminfo_text);
  MemoryCounters c;
  c.vm_rss = get(st, "VmRSS");
  c.rss_anon = get(st, "RssAnon");
  c.rss_file = get(st, "RssFile");
  c.rss_shmem = get(st, "RssShmem");
  c.vm_pte = get(st, "VmPTE");
  c.mem_available = get(mi, "MemAvailable");
  c.sec_page_tables = get(mi, "SecPageTables");
  return c;
}

MemoryCounters read_memory_counters() {
  return memory_counters_from(read_text("/proc/self/status"), read_text("/proc/meminfo"));
}

std::optional<double> counter_delta(const std::optional<uint64_t>& before,
                                    const std::optional<uint64_t>& after) {
  if (!before || !after) return std::nullopt;
  return static_cast<double>(*after) - static_cast<double>(*before);
}

size_t count_entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw std::runtime_error("cannot read " + dir + ": " + std::strerror(errno));
  size_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  ::closedir(d);
  return n;
}

size_t count_fds_to(std::string_view prefix) {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) throw std::runtime_error(std::string("cannot read /proc/self/fd: ") + std::strerror(errno));
  size_t n = 0;
  char target[512];
  while (const dirent* e = ::readdir(d)) {
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t len = ::readlink(link.c_str(), target, sizeof target);
    // "." and "..", and a descriptor closed meanwhile, do not read as links.
    if (len > 0 && std::string_view(target, static_cast<size_t>(len)).starts_with(prefix)) ++n;
  }
  ::closedir(d);
  return n;
}

size_t count_tree_entries(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) ++n;
  if (ec) throw std::runtime_error("cannot read " + dir + ": " + ec.message());
  return n;
}

FdLimits raise_fd_limit() {
  FdLimits out;
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return out;
  out.soft_before = r.rlim_cur;
  out.hard = r.rlim_max;
  try {
    out.soft = raise_open_file_limit();
  } catch (const Error&) {
    out.soft = r.rlim_cur;  // refused: the old soft limit stays
  }
  return out;
}

}  // namespace forkvm::bench
