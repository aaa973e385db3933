#include "net/secret_substitution.hpp"

#include <algorithm>
#include <array>

#include "forkvm/errors.hpp"
#include "net/host_name.hpp"
#include "net/http_text.hpp"

namespace forkvm::net {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr std::size_t kMaxNameLength = 64;

/// Headers that frame the request or belong to one hop: the proxy writes them, no secret may.
constexpr std::array<std::string_view, 9> kProxyOwnedHeaders = {
    "Host",    "Content-Length", "Transfer-Encoding", "Connection",      "Upgrade",
    "TE",      "Trailer",        "Keep-Alive",        "Proxy-Connection"};

bool is_env_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name[0] >= '0' && name[0] <= '9') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
  });
}

bool has_line_break_or_nul(std::string_view text) noexcept {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

/// Whether some host name matches both patterns (each kExact or kSuffix).
bool overlap(const HostPattern& a, const HostPattern& b) noexcept {
  if (a.kind == HostPattern::Kind::kExact) return b.matches_name(a.name);
  if (b.kind == HostPattern::Kind::kExact) return a.matches_name(b.name);
  return a.name.ends_with(b.name) || b.name.ends_with(a.name);  // both ".suffix"
}

bool hosts_overlap(const CompiledSecret& a, const CompiledSecret& b) noexcept {
  for (const HostPattern& x : a.hosts) {
    for (const HostPattern& y : b.hosts) {
      if (overlap(x, y)) return true;
    }
  }
  return false;
}

CompiledSecret compile_secret(const SecretBinding& binding, std::size_t index) {
  const std::string where = "egress secret " + std::to_string(index) + " (" +
                            escaped(binding.name) + "): ";
  auto fail = [&](const std::string& problem) { throw ConfigError(where + problem); };
  if (!is_env_name(binding.name)) {
    fail("the name must be 1..64 of [A-Za-z0-9_], not starting with a digit");
  }
  CompiledSecret out;
  out.name = binding.name;
  if (binding.hosts.empty()) fail("no hosts (the value would never be sent)");
  for (const std::string& host : binding.hosts) {
    PatternCheck p = parse_host_pattern(host);
    if (!p.pattern) fail("host " + in_quotes(host) + ": " + p.error);
    if (p.pattern->kind != HostPattern::Kind::kExact &&
        p.pattern->kind != HostPattern::Kind::kSuffix) {
      fail("host " + in_quotes(host) + " must be a name or \"*.suffix\" (not \"*\" or an address)");
    }
    out.hosts.push_back(std::move(*p.pattern));
  }
  if (!binding.header.empty()) {
    if (!is_http_token(binding.header)) {
      fail("header " + in_quotes(binding.header) + " is not an HTTP token");
    }
    for (std::string_view owned : kProxyOwnedHeaders) {
      if (iequals(binding.header, owned)) {
        fail("header " + in_quotes(binding.header) + " is written by the proxy, not by secrets");
      }
    }
  }
  out.header = binding.header;
  if (has_line_break_or_nul(binding.value)) fail("the value holds CR, LF or NUL");
  out.value = binding.value;
  out.placeholder =
      binding.placeholder.empty() ? "forkvm-secret-" + binding.name : binding.placeholder;
  if (has_line_break_or_nul(out.placeholder)) fail("the placeholder holds CR, LF or NUL");
  return out;
}

/// The index of the longest placeholder at `text[pos]`, or -1.
int placeholder_at(const std::vector<CompiledSecret>& secrets, std::string_view text,
                   std::size_t pos) noexcept {
  int best = -1;
  std::size_t best_size = 0;
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    const std::string& p = secrets[i].placeholder;
    if (p.size() > best_size && text.substr(pos, p.size()) == p) {
      best = static_cast<int>(i);
      best_size = p.size();
    }
  }
  return best;
}

/// Replaces the placeholders of the `bound` secrets in `value`; marks them in `used`.
void substitute(const std::vector<CompiledSecret>& secrets, const std::vector<bool>& bound,
                std::string& value, std::vector<bool>& used) {
  bool any = false;
  for (std::size_t i = 0; i < secrets.size() && !any; ++i) {
    any = bound[i] && value.find(secrets[i].placeholder) != std::string::npos;
  }
  if (!any) return;
  std::string out;
  std::size_t pos = 0;
  while (pos < value.size()) {
    const int hit = placeholder_at(secrets, value, pos);
    if (hit < 0) {
      out += value[pos++];
      continue;
    }
    const auto i = static_cast<std::size_t>(hit);
    out += bound[i] ? secrets[i].value : secrets[i].placeholder;
    used[i] = used[i] || bound[i];
    pos += secrets[i].placeholder.size();
  }
  value = std::move(out);
}

/// Leaves exactly one header `name` (case-insensitive), set to `value`, where the first was.
void set_header(Headers& headers, const std::string& name, const std::string& value) {
  auto first = std::find_if(headers.begin(), headers.end(),
                            [&](const auto& h) { return iequals(h.first, name); });
  if (first == headers.end()) {
    headers.emplace_back(name, value);
    return;
  }
  *first = {name, value};
  headers.erase(std::remove_if(std::next(first), headers.end(),
                               [&](const auto& h) { return iequals(h.first, name); }),
                headers.end());
}

}  // namespace

bool CompiledSecret::bound_to(std::string_view host_name) const noexcept {
  return std::any_of(hosts.begin(), hosts.end(),
                     [host_name](const HostPattern& p) { return p.matches_name(host_name); });
}

SecretSet::SecretSet(const std::vector<SecretBinding>& bindings) {
  for (std::size_t i = 0; i < bindings.size(); ++i) {
    CompiledSecret s = compile_secret(bindings[i], i);
    const std::string where = "egress secret " + std::to_string(i) + " (" + s.name + "): ";
    for (std::size_t j = 0; j < secrets_.size(); ++j) {
      const CompiledSecret& other = secrets_[j];
      const std::string them = "secret " + std::to_string(j) + " (" + other.name + ")";
      if (other.name == s.name) throw ConfigError(where + "the name repeats " + them);
      if (other.placeholder == s.placeholder) {
        throw ConfigError(where + "the placeholder repeats " + them);
      }
      if (!s.header.empty() && iequals(s.header, other.header) && hosts_overlap(s, other)) {
        throw ConfigError(where + "header " + s.header + " is also set by " + them +
                          " for an overlapping host");
      }
    }
    secrets_.push_back(std::move(s));
  }
}

bool SecretSet::binds(std::string_view host) const {
  if (secrets_.empty()) return false;
  const HostCheck check = normalize_host(host);
  if (!check.host || check.host->kind != HostKind::kName) return false;
  return std::any_of(secrets_.begin(), secrets_.end(), [&](const CompiledSecret& s) {
    return s.bound_to(check.host->text);
  });
}

std::vector<std::string> SecretSet::apply(std::string_view host, Headers& headers) const {
  if (secrets_.empty()) return {};
  const HostCheck check = normalize_host(host);
  if (!check.host || check.host->kind != HostKind::kName) return {};
  std::vector<bool> bound(secrets_.size());
  bool any = false;
  for (std::size_t i = 0; i < secrets_.size(); ++i) {
    bound[i] = secrets_[i].bound_to(check.host->text);
    any = any || bound[i];
  }
  if (!any) return {};
  std::vector<bool> used(secrets_.size());
  for (auto& header : headers) substitute(secrets_, bound, header.second, used);
  for (std::size_t i = 0; i < secrets_.size(); ++i) {
    if (!bound[i] || secrets_[i].header.empty()) continue;
    set_header(headers, secrets_[i].header, secrets_[i].value);
    used[i] = true;
  }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < secrets_.size(); ++i) {
    if (used[i]) names.push_back(secrets_[i].name);
  }
  return names;
}

std::vector<std::pair<std::string, std::string>> SecretSet::placeholders() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(secrets_.size());
  for (const CompiledSecret& s : secrets_) out.emplace_back(s.name, s.placeholder);
  return out;
}

}  // namespace forkvm::net
