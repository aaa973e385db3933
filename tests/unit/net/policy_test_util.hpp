// Builders shared by the net/ policy tests: rules, policies, targets and addresses in one line.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>
#include <string>
#include <utility>
#include <vector>

#include "forkvm/egress.hpp"
#include "net/egress_rules.hpp"

namespace forkvm::net::policy_test {

using Ports = std::vector<std::pair<uint16_t, uint16_t>>;
using Methods = std::vector<std::string>;

inline EgressRule rule(EgressAction action, std::string host, Ports ports = {},
                       Methods methods = {}, std::string path = {}) {
  EgressRule r;
  r.action = action;
  r.host = std::move(host);
  r.ports = std::move(ports);
  r.methods = std::move(methods);
  r.path_prefix = std::move(path);
  return r;
}

inline EgressRule allow(std::string host, Ports ports = {}, Methods methods = {},
                        std::string path = {}) {
  return rule(EgressAction::kAllow, std::move(host), std::move(ports), std::move(methods),
              std::move(path));
}

inline EgressRule deny(std::string host, Ports ports = {}, Methods methods = {},
                       std::string path = {}) {
  return rule(EgressAction::kDeny, std::move(host), std::move(ports), std::move(methods),
              std::move(path));
}

inline CompiledPolicy policy(std::vector<EgressRule> rules) {
  EgressPolicy p;
  p.rules = std::move(rules);
  return CompiledPolicy(std::move(p));
}

inline boost::asio::ip::address ip(const char* text) {
  return boost::asio::ip::make_address(text);
}

/// A CONNECT (method "CONNECT", no path) or a plain HTTP request to host:port. The host is
/// given as the guest wrote it: the policy normalizes it.
inline RequestTarget target(std::string host, uint16_t port, std::string method = "CONNECT",
                            std::string path = {}) {
  RequestTarget t;
  t.host = std::move(host);
  t.port = port;
  t.method = std::move(method);
  t.path = std::move(path);
  return t;
}

/// A secret named `name`, injected for `hosts` (into `header`, or where `placeholder` appears).
inline SecretBinding secret(std::string name, std::vector<std::string> hosts,
                            std::string value = "v", std::string header = {},
                            std::string placeholder = {}) {
  SecretBinding s;
  s.name = std::move(name);
  s.hosts = std::move(hosts);
  s.value = std::move(value);
  s.header = std::move(header);
  s.placeholder = std::move(placeholder);
  return s;
}

}  // namespace forkvm::net::policy_test
