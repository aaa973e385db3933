#include "tools/cli/egress_options.hpp"

#include <fstream>
#include <iterator>

#include "tools/cli/args.hpp"

namespace forkvm::cli {
namespace {

std::optional<uint16_t> parse_port(const std::string& text, bool allow_zero) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535 || (value == 0 && !allow_zero)) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// Largest secret file read (a key or token, not a data file).
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

}  // namespace

EgressRule parse_host_rule(const std::string& option, const std::string& value,
                           EgressAction action) {
  EgressRule rule;
  rule.action = action;
  std::string pattern = value;
  std::string port;
  if (!value.empty() && value.front() == '[') {
    const auto close = value.find(']');
    if (close == std::string::npos) throw UsageError(option + " " + value + ": no ']'");
    pattern = value.substr(1, close - 1);
    const std::string rest = value.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw UsageError(option + " " + value + ": junk after ']'");
      port = rest.substr(1);
      if (port.empty()) throw UsageError(option + " " + value + ": the port is empty");
    }
  } else if (const auto colon = value.find(':');
             colon != std::string::npos && value.find(':', colon + 1) == std::string::npos) {
    pattern = value.substr(0, colon);
    port = value.substr(colon + 1);
    if (port.empty()) throw UsageError(option + " " + value + ": the port is empty");
  }
  if (pattern.empty()) throw UsageError(option + ": the host pattern is empty");
  rule.host = pattern;
  if (!port.empty()) {
    const auto p = parse_port(port, false);
    if (!p) throw UsageError(option + " " + value + ": the port must be 1..65535");
    rule.ports.emplace_back(*p, *p);
  }
  return rule;
}

SecretBinding parse_secret_option(
    const std::string& value,
    const std::function<std::optional<std::string>(const std::string& name)>& getenv_fn) {
  const std::string usage = "--secret NAME@HOST[:HEADER][,file=PATH]";
  std::string spec = value;
  std::string file;
  if (const auto comma = spec.find(','); comma != std::string::npos) {
    const std::string option = spec.substr(comma + 1);
    if (option.rfind("file=", 0) != 0 || option.size() == 5) {
      throw UsageError(usage + ": after ',' only file=PATH");
    }
    file = option.substr(5);
    spec = spec.substr(0, comma);
  }
  const auto at = spec.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == spec.size()) {
    throw UsageError(usage + ": '" + value + "' has no NAME@HOST");
  }
  SecretBinding binding;
  binding.name = spec.substr(0, at);
  std::string host = spec.substr(at + 1);
  if (const auto colon = host.find(':'); colon != std::string::npos) {
    binding.header = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (binding.header.empty() || host.empty()) throw UsageError(usage + ": empty HOST or HEADER");
  }
  binding.hosts.push_back(host);
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw UsageError("--secret " + binding.name + ": cannot read " + file);
    std::string text;
    text.resize(kMaxSecretFileBytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxSecretFileBytes) {
      throw UsageError("--secret " + binding.name + ": " + file + " is over 64 KiB");
    }
    // A trailing newline (echo token > file) is not part of the value.
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    binding.value = std::move(text);
  } else {
    auto env_value = getenv_fn(binding.name);
    if (!env_value) {
      throw UsageError("--secret " + binding.name + ": set the host environment variable " +
                       binding.name + " (or give ,file=PATH): values never come from argv");
    }
    binding.value = std::move(*env_value);
  }
  return binding;
}

PublishedPort parse_publish_option(const std::string& value) {
  PublishedPort out;
  if (value.rfind("unix:", 0) == 0) {
    const auto colon = value.rfind(':');
    const auto guest = colon > 5 ? parse_port(value.substr(colon + 1), false) : std::nullopt;
    if (!guest) throw UsageError("-p " + value + ": want unix:PATH:GUESTPORT (GUESTPORT 1..65535)");
    out.unix_path = value.substr(5, colon - 5);
    out.guest_port = *guest;
    return out;
  }
  const auto colon = value.find(':');
  if (colon == std::string::npos) {
    throw UsageError("-p " + value + ": want HOSTPORT:GUESTPORT or unix:PATH:GUESTPORT");
  }
  const auto host = parse_port(value.substr(0, colon), true);
  const auto guest = parse_port(value.substr(colon + 1), false);
  if (!host || !guest) {
    throw UsageError("-p " + value + ": ports are 0..65535 on the host and 1..65535 in the guest");
  }
  out.host_port = *host;
  out.guest_port = *guest;
  return out;
}

}  // namespace forkvm::cli
