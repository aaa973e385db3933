#include "bench/host_symbols.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace forkvm::bench {
namespace {

std::string read_all(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool parse_hex(const std::string& text, uint64_t& out) {
  std::string t = text;
  if (t.rfind("0x", 0) == 0) t = t.substr(2);
  if (t.empty() || t.size() > 16 || t.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return false;
  }
  out = std::stoull(t, nullptr, 16);
  return true;
}

}  // namespace

std::vector<HostModule> parse_proc_modules(const std::string& text) {
  std::vector<HostModule> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string name, size, refs, deps, state, addr;
    if (!(f >> name >> size >> refs >> deps >> state >> addr)) continue;
    HostModule m;
    m.name = name;
    if (!parse_hex(addr, m.base) || m.base == 0) continue;
    if (size.empty() || size.find_first_not_of("0123456789") != std::string::npos) continue;
    m.size = std::stoull(size);
    out.push_back(m);
  }
  return out;
}

std::vector<HostSymbol> parse_module_symbols(const std::string& text) {
  std::vector<HostSymbol> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string addr, type, name, module;
    if (!(f >> addr >> type >> name >> module)) continue;  // no [module]: the kernel's own
    if (module.size() < 3 || module.front() != '[' || module.back() != ']') continue;
    HostSymbol s;
    if (!parse_hex(addr, s.address) || s.address == 0) continue;
    s.name = name;
    s.module = module.substr(1, module.size() - 2);
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const HostSymbol& a, const HostSymbol& b) { return a.address < b.address; });
  return out;
}

std::string resolve_host_address(uint64_t address, const HostModules& host) {
  const HostModule* in = nullptr;
  for (const auto& m : host.modules) {
    if (address >= m.base && address - m.base < m.size) in = &m;
  }
  if (in == nullptr) return "";
  // The closest symbol at or below the address, of the same module.
  auto it = std::upper_bound(host.symbols.begin(), host.symbols.end(), address,
                             [](uint64_t a, const HostSymbol& s) { return a < s.address; });
  while (it != host.symbols.begin()) {
    --it;
    if (it->module != in->name) continue;
    std::ostringstream o;
    o << it->name << "+0x" << std::hex << (address - it->address) << " [" << in->name << "]";
    return o.str();
  }
  std::ostringstream o;
  o << "[" << in->name << "]+0x" << std::hex << (address - in->base);
  return o.str();
}

std::string host_code_rips(const std::string& trace, const HostModules& host) {
  static const std::regex rip_re("rip (0x[0-9a-fA-F]+)");
  std::set<uint64_t> seen;
  std::string out;
  for (auto it = std::sregex_iterator(trace.begin(), trace.end(), rip_re); it != std::sregex_iterator(); ++it) {
    uint64_t a = 0;
    if (!parse_hex((*it)[1].str(), a) || !seen.insert(a).second) continue;
    const std::string where = resolve_host_address(a, host);
    if (where.empty()) continue;
    std::ostringstream o;
    o << "  guest RIP 0x" << std::hex << a << " is host code: " << where << "\n";
    out += o.str();
  }
  return out;
}

HostModules read_host_modules() {
  HostModules h;
  h.modules = parse_proc_modules(read_all("/proc/modules"));
  h.symbols = parse_module_symbols(read_all("/proc/kallsyms"));
  return h;
}

}  // namespace forkvm::bench
