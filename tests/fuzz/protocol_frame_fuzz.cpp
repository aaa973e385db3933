// Fuzz target: the host <-> agent protocol as either side receives it. The input is one byte
// (the chunk size the stream is fed in, 1..256) and then the byte stream. Every complete frame
// goes through the field rules its type has on the receiving side: the hello negotiation, the
// agent's request fields (string/bool/uint fields, paths, env keys and values, secret names,
// the identity request with its MAC addresses and hostname) and the host's reply parsers
// (exit, stat, list_dir entries, error frames). Typed errors (ProtocolError, the agent's
// OpError, the host's OperationError) are the expected answers to bad input; anything else
// escaping, a crash, a leak or undefined behaviour is a finding.
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/frame.hpp"
#include "contract/protocol/hello.hpp"
#include "contract/protocol/messages.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "guest-init/agent/fields.hpp"
#include "guest-init/agent/identity.hpp"
#include "guest-init/agent/op_error.hpp"
#include "sandbox/requests.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using nlohmann::json;
namespace protocol = forkvm::protocol;

namespace {

// Runs `f`, treating the typed errors of the protocol's two sides as answers.
template <typename F>
void answer(F&& f) {
  try {
    f();
  } catch (const protocol::ProtocolError&) {
  } catch (const forkvm::agent::OpError&) {
  } catch (const forkvm::Error&) {  // OperationError and the other forkvm errors
  }
}

// The string fields of a header, through the field rules that apply to each.
void string_rules(const json& header) {
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (!it->is_string()) continue;
    const std::string& key = it.key();
    const auto& s = it->get_ref<const std::string&>();
    (void)protocol::valid_env_key(s);
    (void)protocol::valid_env_value(s);
    (void)protocol::valid_secret_name(s);
    (void)protocol::valid_hostname(s);
    if (auto mac = protocol::parse_mac(s)) {
      (void)protocol::valid_unicast_mac(*mac);
      if (protocol::format_mac(*mac).size() != 17) __builtin_trap();
    }
    (void)protocol::path_problem(s);
    answer([&] { forkvm::agent::check_path(key, s); });
    answer([&] { forkvm::sandbox::check_path("fuzz", s); });
  }
}

// What the agent does with a request header before it acts (guest-init/agent/requests.cpp).
void agent_side(const protocol::Frame& frame, const std::string& type) {
  const json& h = frame.header;
  answer([&] { (void)forkvm::agent::string_field(h, "path"); });
  answer([&] { (void)forkvm::agent::bool_field(h, "recursive", false); });
  answer([&] { (void)forkvm::agent::uint_field(h, "mode", 0644); });
  answer([&] { (void)forkvm::agent::uint_field(h, "timeout_ms", 0); });
  answer([&] { (void)forkvm::agent::uint_field(h, "max_output_bytes", 1); });
  if (type == protocol::msg::kIdentity) {
    answer([&] { (void)forkvm::agent::parse_identity(h, frame.payload); });
  }
  if (type == protocol::msg::kSetEnv || type == protocol::msg::kExec) {
    // The host checks the same rules before it sends (sandbox/requests.cpp).
    const auto env = h.find("env");
    if (env != h.end() && env->is_object()) {
      std::map<std::string, std::string> m;
      for (const auto& [k, v] : env->items()) {
        if (v.is_string()) m[k] = v.get<std::string>();
      }
      answer([&] { (void)forkvm::sandbox::set_env_request(m); });
    }
  }
  if (type == protocol::msg::kSetSecret) {
    const auto name = h.find("name");
    if (name != h.end() && name->is_string()) {
      answer([&] {
        (void)forkvm::sandbox::set_secret_request(name->get<std::string>(), frame.payload);
      });
    }
  }
}

// What the host does with a reply header (sandbox/requests.cpp, client_impl.cpp).
void host_side(const protocol::Frame& frame, const std::string& type) {
  const json& h = frame.header;
  if (type == protocol::msg::kExit) {
    forkvm::ExecResult result;
    answer([&] { forkvm::sandbox::parse_exit(h, result); });
  }
  if (type == protocol::msg::kError) {
    answer([&] { (void)forkvm::sandbox::error_from_frame(h, "fuzz", "/fuzz"); });
  }
  if (type == protocol::msg::kOk) {
    answer([&] { (void)forkvm::sandbox::parse_stat(h); });
    const auto entries = h.find("entries");
    if (entries != h.end() && entries->is_array()) {
      for (const auto& e : *entries) answer([&] { (void)forkvm::sandbox::parse_stat(e); });
    }
  }
}

void on_frame(const protocol::Frame& frame) {
  // next() validated the header: an object with a string "type" and an integer "id".
  const std::string type = frame.header.at("type").get<std::string>();
  if (type == protocol::msg::kHello) {
    answer([&] { (void)protocol::negotiate(protocol::VersionRange{}, frame.header); });
  }
  string_rules(frame.header);
  agent_side(frame, type);
  host_side(frame, type);
  // What was received can be sent back: encode() checks the same rules and limits, and only
  // with its typed error (a re-serialised header may be longer, e.g. "1e9" -> 1000000000).
  answer([&] { (void)protocol::encode(frame, protocol::Limits{4096, 65536}); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  forkvm::fuzz::ByteReader in(data, size);
  const size_t chunk = size_t{in.u8()} + 1;
  const auto stream = in.rest();
  // Small limits, so that the over-limit paths are reached with small inputs.
  protocol::FrameDecoder decoder(protocol::Limits{4096, 65536});
  try {
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      decoder.feed(stream.subspan(pos, std::min(chunk, stream.size() - pos)));
      while (auto frame = decoder.next()) on_frame(*frame);
    }
  } catch (const protocol::ProtocolError&) {
    if (!decoder.poisoned()) __builtin_trap();  // the first error must poison the decoder
  }
  return 0;
}
