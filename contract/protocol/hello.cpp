#include "contract/protocol/hello.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace forkvm::protocol {
namespace {

using Kind = ProtocolErrorKind;

std::string describe(VersionRange range) {
  return "[" + std::to_string(range.min) + ", " + std::to_string(range.max) + "]";
}

void check_range(VersionRange range, std::string_view whose) {
  if (range.min == 0 || range.min > range.max) {
    throw ProtocolError(Kind::BadHello, std::string(whose) + " version range " + describe(range) +
                                            " is empty or starts at 0");
  }
}

// Peer-controlled: any JSON value; only integers in [1, 2^32) are accepted.
std::uint32_t version_field(const nlohmann::json& header, const char* key) {
  const auto it = header.find(key);
  if (it == header.end()) {
    throw ProtocolError(Kind::BadHello, std::string("hello has no \"") + key + "\"");
  }
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
    throw ProtocolError(Kind::BadHello, std::string("hello \"") + key +
                                            "\" is not a non-negative integer");
  }
  const auto value = it->get<std::uint64_t>();
  if (value == 0 || value > std::numeric_limits<std::uint32_t>::max()) {
    throw ProtocolError(Kind::BadHello, std::string("hello \"") + key + "\" = " +
                                            std::to_string(value) + " is out of range");
  }
  return static_cast<std::uint32_t>(value);
}

}  // namespace

Frame make_hello(VersionRange range) {
  check_range(range, "local");
  return Frame{{{"type", "hello"}, {"id", 0u}, {"version", range.max}, {"min_version", range.min}},
               {}};
}

VersionRange parse_hello(const nlohmann::json& header) {
  if (!header.is_object()) throw ProtocolError(Kind::BadHello, "hello is not a JSON object");
  const auto type = header.find("type");
  if (type == header.end() || !type->is_string() || *type != "hello") {
    throw ProtocolError(Kind::BadHello, "first frame is not a hello");
  }
  const VersionRange range{version_field(header, "min_version"), version_field(header, "version")};
  check_range(range, "peer");
  return range;
}

std::uint32_t negotiate(VersionRange local, const nlohmann::json& remote_hello) {
  check_range(local, "local");
  const VersionRange remote = parse_hello(remote_hello);
  const std::uint32_t highest = std::min(local.max, remote.max);
  if (highest < std::max(local.min, remote.min)) {
    throw ProtocolError(Kind::VersionMismatch, "no common protocol version: local supports " +
                                                   describe(local) + ", peer supports " +
                                                   describe(remote));
  }
  return highest;
}

}  // namespace forkvm::protocol
