#include "tools/cli/net_spec.hpp"

#include <set>

#include "contract/protocol/field_rules.hpp"
#include "tools/cli/args.hpp"

namespace forkvm::cli {

const char* const kNetUsage =
    "--net tap=NAME[,netns=PATH][,mac=MAC] gives the guest a virtio-net NIC (eth0) on the TAP\n"
    "interface NAME (made if missing, which needs CAP_NET_ADMIN), opened inside the network\n"
    "namespace PATH (e.g. /run/netns/forkvm-a, made by tools/net/forkvm-netns) when given;\n"
    "MAC is the guest's address (default: a random locally administered one). The guest\n"
    "configures eth0 itself (e.g. ip addr add 172.16.0.2/30 dev eth0). With --snapshot the\n"
    "fork gets this NIC and a fresh MAC; the guest keeps its addresses and routes.\n";

NetConfig parse_net_spec(const std::string& spec) {
  NetConfig net;
  std::set<std::string> seen;
  std::string rest = spec;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string item = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      throw UsageError("--net " + spec + ": '" + item + "' is not KEY=VALUE (tap, netns, mac)");
    }
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    if (!seen.insert(key).second) throw UsageError("--net " + spec + ": " + key + "= given twice");
    if (value.empty()) throw UsageError("--net " + spec + ": " + key + "= is empty");
    if (key == "tap") {
      net.tap = value;
    } else if (key == "netns") {
      net.netns = value;
    } else if (key == "mac") {
      const auto mac = protocol::parse_mac(value);
      if (!mac || !protocol::valid_unicast_mac(*mac)) {
        throw UsageError("--net " + spec + ": mac=" + value +
                         " is not a unicast address like 02:00:00:00:00:01");
      }
      net.mac = *mac;
    } else {
      throw UsageError("--net " + spec + ": unknown key '" + key + "' (tap, netns, mac)");
    }
  }
  if (net.tap.empty()) throw UsageError("--net " + spec + ": tap=NAME is required");
  return net;
}

}  // namespace forkvm::cli
