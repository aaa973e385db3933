// A sandbox's network paths over vsock (contract/net_ports.hpp): the egress proxy that the
// guest's HTTP(S) requests reach (net/egress_proxy.hpp, one per sandbox, each fork its own)
// and the guest ports exposed on the host (net/port_forward.hpp).
#include <map>
#include <mutex>

#include "contract/net_ports.hpp"
#include "forkvm/sandbox.hpp"
#include "net/egress_proxy.hpp"
#include "net/egress_rules.hpp"
#include "net/host_request.hpp"
#include "net/port_forward.hpp"
#include "sandbox/sandbox_impl.hpp"

namespace forkvm {

namespace {

// Unix socket paths are limited to 107 bytes (sun_path, with its NUL).
constexpr std::size_t kMaxSocketPath = 107;

std::string egress_socket_path(const std::string& vsock_socket) {
  // The vsock device connects a guest's connection to host port P to "<socket>_P".
  std::string path = vsock_socket + "_" + std::to_string(net::kEgressVsockPort);
  if (path.size() > kMaxSocketPath) {
    throw ConfigError("the egress socket path " + path + " is longer than " +
                      std::to_string(kMaxSocketPath) + " bytes: choose a shorter runtime_dir");
  }
  return path;
}

// Where the guest's trust of the sandbox CA lives (install_egress_in_guest).
constexpr const char* kGuestSystemBundle = "/etc/ssl/certs/ca-certificates.crt";
constexpr const char* kGuestEgressCa = "/run/forkvm/egress-ca.pem";
constexpr const char* kGuestCaBundle = "/run/forkvm/ca-bundle.pem";

}  // namespace

void Sandbox::Impl::start_egress() {
  std::lock_guard lock(egress_mutex);
  auto policy = std::make_shared<const net::CompiledPolicy>(config.egress.policy);
  // A fresh CA for every sandbox, forks included: install_egress_in_guest() installs this
  // one's certificate in the guest, replacing what a parent installed.
  net::TlsInterception tls;
  tls.upstream_ca_file = config.egress.upstream_ca_file;
  egress_proxy = std::make_unique<net::EgressProxy>(egress_socket_path(socket_path),
                                                    std::move(policy), config.egress.audit, tls);
}

void Sandbox::Impl::install_egress_in_guest() {
  std::map<std::string, std::string> env;
  std::string ca_pem;
  {
    std::lock_guard lock(egress_mutex);
    const net::CompiledPolicy policy(config.egress.policy);
    for (const auto& [name, placeholder] : policy.placeholders()) env[name] = placeholder;
    // Only with secrets bound: the CA is made on first use (not on every fork's path).
    if (egress_proxy && !env.empty()) ca_pem = egress_proxy->ca_pem();
  }
  if (env.empty()) return;
  // HTTPS to a host with secrets is intercepted (net/README.md): the guest must trust this
  // sandbox's CA. The guest's own bundle stays as it is; a second bundle (the system's plus
  // the CA) is what the TLS libraries are pointed at, since several ignore the system store.
  AgentClient& agent = *client.load();
  std::string bundle;
  try {
    bundle = agent.read_file(kGuestSystemBundle, 4u << 20);
  } catch (const Error&) {
    bundle.clear();  // a guest without ca-certificates (the minimal image): the CA alone
  }
  if (!bundle.empty() && bundle.back() != '\n') bundle += '\n';
  bundle += ca_pem;
  agent.write_file(kGuestEgressCa, ca_pem);
  agent.write_file(kGuestCaBundle, bundle);
  for (const char* var : {"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT",
                          "GIT_SSL_CAINFO"}) {
    env[var] = kGuestCaBundle;
  }
  env["NODE_EXTRA_CA_CERTS"] = kGuestEgressCa;
  agent.set_env(env);
}

EgressConfig Sandbox::Impl::egress_config() {
  std::lock_guard lock(egress_mutex);
  return config.egress;
}

void Sandbox::Impl::stop_network() {
  std::unique_ptr<net::EgressProxy> proxy;
  std::vector<std::unique_ptr<net::PortForward>> ports;
  {
    std::lock_guard lock(egress_mutex);
    proxy = std::move(egress_proxy);
    ports = std::move(forwards);
  }
  // Outside the lock: each destructor waits for its connections to close on the network
  // thread, whose audit callbacks may call back into the sandbox.
  ports.clear();
  proxy.reset();
}

void Sandbox::set_egress_policy(const EgressPolicy& policy) {
  auto compiled = std::make_shared<const net::CompiledPolicy>(policy);  // ConfigError: no change
  impl_->ready_client();  // InvalidStateError (or GuestError) unless ready
  {
    std::lock_guard lock(impl_->egress_mutex);
    if (!impl_->egress_proxy) throw InvalidStateError("the sandbox has no egress proxy");
    impl_->egress_proxy->set_policy(compiled);
    impl_->config.egress.policy = policy;
  }
  impl_->install_egress_in_guest();
}

ExposedPort Sandbox::expose_port(uint16_t guest_port, uint16_t host_port) {
  impl_->ready_client();
  auto forward = std::make_unique<net::PortForward>(impl_->socket_path, guest_port, host_port);
  ExposedPort exposed;
  exposed.host = "127.0.0.1";
  exposed.port = forward->host_port();
  exposed.guest_port = guest_port;
  std::lock_guard lock(impl_->egress_mutex);
  impl_->forwards.push_back(std::move(forward));
  return exposed;
}

ExposedPort Sandbox::expose_port_unix(uint16_t guest_port, const std::string& path) {
  impl_->ready_client();
  auto forward = std::make_unique<net::PortForward>(impl_->socket_path, guest_port, path);
  ExposedPort exposed;
  exposed.unix_path = forward->unix_path();
  exposed.guest_port = guest_port;
  std::lock_guard lock(impl_->egress_mutex);
  impl_->forwards.push_back(std::move(forward));
  return exposed;
}

HttpResponse Sandbox::http_request(const HttpRequest& request) {
  impl_->ready_client();
  net::ProxyEndpoint endpoint;
  {
    std::lock_guard lock(impl_->egress_mutex);
    if (!impl_->egress_proxy) throw InvalidStateError("the sandbox has no egress proxy");
    endpoint = impl_->egress_proxy->endpoint();
  }
  return net::http_request_via_proxy(endpoint, request);
}

}  // namespace forkvm
