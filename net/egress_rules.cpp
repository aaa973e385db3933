#include "net/egress_rules.hpp"

#include <optional>

#include "forkvm/errors.hpp"
#include "net/request_path.hpp"
#include "net/special_address.hpp"

namespace forkvm::net {
namespace {

using boost::asio::ip::address;

void check_limits(const EgressLimits& l) {
  auto need = [](bool positive, const char* field) {
    if (!positive) throw ConfigError(std::string("egress limits: ") + field + " must be nonzero");
  };
  need(l.max_connections > 0, "max_connections");
  need(l.max_header_bytes > 0, "max_header_bytes");
  need(l.max_bytes_per_connection > 0, "max_bytes_per_connection");
  need(l.idle_timeout.count() > 0, "idle_timeout");
  need(l.total_timeout.count() > 0, "total_timeout");
  need(l.connect_timeout.count() > 0, "connect_timeout");
}

std::vector<CompiledRule> compile_rules(const std::vector<EgressRule>& rules) {
  std::vector<CompiledRule> out;
  out.reserve(rules.size());
  for (std::size_t i = 0; i < rules.size(); ++i) out.push_back(compile_rule(rules[i], i));
  return out;
}

Decision denied(std::string text) { return Decision{false, -1, std::move(text)}; }

Decision by_rule(const CompiledRule& rule, std::size_t index) {
  return Decision{rule.action == EgressAction::kAllow, static_cast<int>(index), rule.text};
}

/// The checks before any rule: a valid host and a nonzero port. nullopt when they pass.
std::optional<Decision> refuse_early(const HostCheck& host, uint16_t port) {
  if (!host.host) return denied("invalid host: " + host.error);
  if (port == 0) return denied("port 0 is not a destination");
  return std::nullopt;
}

}  // namespace

CompiledPolicy::CompiledPolicy(EgressPolicy policy)
    : rules_(compile_rules(policy.rules)), limits_(policy.limits), secrets_(policy.secrets) {
  check_limits(limits_);
}

PreDecision CompiledPolicy::decide_by_name(const RequestTarget& target) const {
  const HostCheck host = normalize_host(target.host);
  if (auto early = refuse_early(host, target.port)) {
    return PreDecision{NameVerdict::kDenied, std::move(*early)};
  }
  if (host.host->kind == HostKind::kAddress) {
    Decision d = decide(target, host.host->address);
    const NameVerdict verdict = d.allowed ? NameVerdict::kAllowed : NameVerdict::kDenied;
    return PreDecision{verdict, std::move(d)};
  }
  const std::string& name = host.host->text;
  const bool tunnel = target.method == "CONNECT";
  const std::string_view path = tunnel ? std::string_view() : path_without_query(target.path);
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const CompiledRule& rule = rules_[i];
    if (!rule.applies(target.port, target.method, path, tunnel)) continue;
    const int index = static_cast<int>(i);
    if (rule.host.kind == HostPattern::Kind::kBlock) {
      return PreDecision{NameVerdict::kNeedsAddress,
                         Decision{false, index,
                                  rule.text + " (needs the address " + name + " resolves to)"}};
    }
    if (!rule.host.matches_name(name)) continue;
    if (rule.action == EgressAction::kDeny) {
      return PreDecision{NameVerdict::kDenied, by_rule(rule, i)};
    }
    return PreDecision{NameVerdict::kNeedsAddress,
                       Decision{false, index,
                                rule.text + " (if " + name + " resolves to a public address)"}};
  }
  return PreDecision{NameVerdict::kDenied, denied("no rule matches (default deny)")};
}

Decision CompiledPolicy::decide(const RequestTarget& target, const address& resolved) const {
  const HostCheck checked = normalize_host(target.host);
  if (auto early = refuse_early(checked, target.port)) return std::move(*early);
  const NormalizedHost& host = *checked.host;
  const address addr = canonical_address(resolved);
  const bool literal = host.kind == HostKind::kAddress;
  if (literal && canonical_address(host.address) != addr) {
    return denied("address " + addr.to_string() + " is not the requested address " + host.text);
  }
  const std::optional<std::string_view> special = special_address_kind(addr);
  const bool tunnel = target.method == "CONNECT";
  const std::string_view path = tunnel ? std::string_view() : path_without_query(target.path);
  bool skipped_allow = false;  // a name rule allowed this host, but the address is special
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const CompiledRule& rule = rules_[i];
    if (!rule.applies(target.port, target.method, path, tunnel)) continue;
    if (rule.host.kind == HostPattern::Kind::kBlock) {
      if (rule.host.block->contains(addr)) return by_rule(rule, i);
      continue;
    }
    if (literal) {
      // Name rules never match an address; "*" matches a public one only.
      if (rule.host.kind != HostPattern::Kind::kAny) continue;
      if (!special) return by_rule(rule, i);
      skipped_allow = skipped_allow || rule.action == EgressAction::kAllow;
      continue;
    }
    if (!rule.host.matches_name(host.text)) continue;
    if (rule.action == EgressAction::kDeny || !special) return by_rule(rule, i);
    skipped_allow = true;
  }
  if (!skipped_allow) return denied("no rule matches (default deny)");
  const std::string kind(*special);
  if (literal) {
    return denied(addr.to_string() + " is a special address (" + kind +
                  "), which only an IP/CIDR rule can allow");
  }
  return denied(host.text + " resolves to " + addr.to_string() + " (" + kind +
                "), which only an IP/CIDR rule can allow");
}

std::vector<std::string> CompiledPolicy::apply_secrets(
    std::string_view host, std::vector<std::pair<std::string, std::string>>& headers) const {
  return secrets_.apply(host, headers);
}

bool CompiledPolicy::binds_secrets(std::string_view host) const { return secrets_.binds(host); }

std::vector<std::pair<std::string, std::string>> CompiledPolicy::placeholders() const {
  return secrets_.placeholders();
}

}  // namespace forkvm::net
