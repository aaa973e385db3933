// Fuzz target: the request head a guest sends the egress proxy, up to the decision, as
// EgressConnection::serve and open_upstream take it (net/egress_connection.cpp): Beast's header
// parser with the proxy's header limit, the CONNECT target ("host:port", "[v6]:port") or the
// absolute URI of a plain HTTP request, normalize_host, and the policy's decisions before and
// after DNS (an IP literal host is its own address) against a fixed policy with name, wildcard,
// CIDR, method and path-prefix rules. Nothing leaves the process: there is no socket.
#include <cstdint>
#include <string_view>
#include <variant>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "forkvm/egress.hpp"
#include "net/egress_rules.hpp"
#include "net/host_name.hpp"
#include "net/request_target.hpp"

namespace http = boost::beast::http;
using namespace forkvm;
using namespace forkvm::net;

namespace {

const CompiledPolicy& policy() {
  static const CompiledPolicy p = [] {
    EgressPolicy pol;
    pol.rules.push_back({EgressAction::kDeny, "evil.example.com", {}, {}, {}});
    pol.rules.push_back({EgressAction::kAllow, "*.pypi.org", {{443, 443}}, {}, {}});
    pol.rules.push_back({EgressAction::kAllow, "example.com", {{80, 80}}, {"GET"}, "/simple/"});
    pol.rules.push_back({EgressAction::kAllow, "10.0.0.0/8", {}, {}, {}});
    pol.rules.push_back({EgressAction::kAllow, "fd00::/8", {{1, 1024}}, {}, {}});
    pol.rules.push_back({EgressAction::kAllow, "*", {{443, 443}}, {}, {}});
    return CompiledPolicy(pol);
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::empty_body> parser;
  parser.header_limit(EgressLimits{}.max_header_bytes);
  parser.eager(false);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& request = parser.get();
  const std::string_view raw_target(request.target().data(), request.target().size());
  const bool connect = request.method() == http::verb::connect;
  auto parsed = connect ? parse_connect_target(raw_target) : parse_absolute_target(raw_target);
  const auto* target = std::get_if<ProxyTarget>(&parsed);
  if (target == nullptr) return 0;
  const HostCheck host = normalize_host(target->host);
  if (!host.host) return 0;
  RequestTarget rt;
  rt.host = host.host->text;
  rt.port = target->port;
  rt.method = connect ? "CONNECT"
                      : std::string(request.method_string().data(), request.method_string().size());
  rt.path = target->path;
  const PreDecision pre = policy().decide_by_name(rt);
  if (host.host->kind == HostKind::kAddress) (void)policy().decide(rt, host.host->address);
  if (pre.verdict == NameVerdict::kNeedsAddress) {
    (void)policy().decide(rt, boost::asio::ip::make_address("10.1.2.3"));
    (void)policy().decide(rt, boost::asio::ip::make_address("169.254.169.254"));
  }
  return 0;
}
