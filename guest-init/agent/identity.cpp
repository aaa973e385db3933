#include "guest-init/agent/identity.hpp"

#include <fcntl.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>

#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/interface_mac.hpp"
#include "guest-init/agent/op_error.hpp"
#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::agent {
namespace {

using protocol::code::kInvalidArgument;

/// Mixes `bytes` into the input pool, crediting them, then forces a CRNG reseed. The reseed is
/// the point: writing to /dev/urandom alone only mixes, and the CRNG would keep producing the
/// snapshot's stream until its next scheduled reseed (up to a minute later).
void reseed_kernel_rng(const std::string& bytes) {
  UniqueFd fd(::open("/dev/urandom", O_RDWR | O_CLOEXEC));
  if (!fd.valid()) throw errno_error(errno, "open /dev/urandom");
  // struct rand_pool_info with its flexible buf[] given room for the largest payload.
  struct PoolInfo {
    int entropy_count;
    int buf_size;
    unsigned char buf[kMaxIdentityEntropy];
  };
  static_assert(offsetof(PoolInfo, buf) == sizeof(rand_pool_info));
  PoolInfo pool{};
  const size_t n = std::min(bytes.size(), kMaxIdentityEntropy);
  pool.entropy_count = static_cast<int>(n * 8);
  pool.buf_size = static_cast<int>(n);
  std::memcpy(pool.buf, bytes.data(), n);
  auto* info = &pool;
  // Guest-side kernel RNG ioctls (not KVM): the one ioctl user outside vmm/kvm/, allowed by
  // tests/unit/package/ioctl_confinement_test.sh for this file only.
  if (::ioctl(fd.get(), RNDADDENTROPY, info) != 0) throw errno_error(errno, "RNDADDENTROPY");
  if (::ioctl(fd.get(), RNDRESEEDCRNG) != 0) throw errno_error(errno, "RNDRESEEDCRNG");
}

}  // namespace

IdentityRequest parse_identity(const nlohmann::json& header, std::string_view payload) {
  IdentityRequest r;
  if (payload.size() < kMinIdentityEntropy || payload.size() > kMaxIdentityEntropy) {
    throw OpError(kInvalidArgument, "identity: the entropy payload is " +
                                        std::to_string(payload.size()) + " bytes; want " +
                                        std::to_string(kMinIdentityEntropy) + ".." +
                                        std::to_string(kMaxIdentityEntropy));
  }
  r.entropy.assign(payload);
  if (header.contains("wall_clock_ns") && !header.at("wall_clock_ns").is_null()) {
    const nlohmann::json& v = header.at("wall_clock_ns");
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      throw OpError(kInvalidArgument, "identity: \"wall_clock_ns\" must be a positive integer");
    }
    r.wall_clock_ns = v.get<int64_t>();
  }
  if (header.contains("hostname") && !header.at("hostname").is_null()) {
    const nlohmann::json& v = header.at("hostname");
    if (!v.is_string() || !protocol::valid_hostname(v.get<std::string>())) {
      throw OpError(kInvalidArgument,
                    "identity: \"hostname\" must be 1..64 characters of [A-Za-z0-9.-]");
    }
    r.hostname = v.get<std::string>();
  }
  if (header.contains("mac") && !header.at("mac").is_null()) {
    // {"from": "02:..", "to": "02:.."}: the address the guest's NIC has now and its new one.
    const nlohmann::json& v = header.at("mac");
    const auto address = [&](const char* key) {
      if (!v.is_object() || !v.contains(key) || !v.at(key).is_string()) {
        throw OpError(kInvalidArgument, std::string("identity: \"mac\" needs a string \"") +
                                            key + "\"");
      }
      const auto mac = protocol::parse_mac(v.at(key).get<std::string>());
      if (!mac) {
        throw OpError(kInvalidArgument, std::string("identity: \"mac\".\"") + key +
                                            "\" is not a MAC address like 02:00:00:00:00:01");
      }
      return *mac;
    };
    r.mac_from = address("from");
    r.mac_to = address("to");
    if (!protocol::valid_unicast_mac(*r.mac_to)) {
      throw OpError(kInvalidArgument, "identity: \"mac\".\"to\" must be a unicast address");
    }
  }
  return r;
}

nlohmann::json apply_identity(const IdentityRequest& request) {
  reseed_kernel_rng(request.entropy);
  nlohmann::json reply = {{"reseeded", true}, {"clock_set", false}, {"hostname_set", false}};
  if (request.wall_clock_ns) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(*request.wall_clock_ns / 1000000000);
    ts.tv_nsec = static_cast<long>(*request.wall_clock_ns % 1000000000);
    if (::clock_settime(CLOCK_REALTIME, &ts) != 0) throw errno_error(errno, "clock_settime");
    reply["clock_set"] = true;
  }
  if (request.hostname) {
    if (::sethostname(request.hostname->data(), request.hostname->size()) != 0) {
      throw errno_error(errno, "sethostname");
    }
    reply["hostname_set"] = true;
  }
  if (request.mac_from && request.mac_to) {
    const MacChangeResult changed = change_interface_mac(*request.mac_from, *request.mac_to);
    if (!changed.error.empty()) throw OpError(protocol::code::kIo, "identity: " + changed.error);
    // The interface that was moved, or false when no interface had the old address.
    reply["mac_set"] = changed.interface.empty() ? nlohmann::json(false)
                                                 : nlohmann::json(changed.interface);
  }
  return reply;
}

}  // namespace forkvm::agent
