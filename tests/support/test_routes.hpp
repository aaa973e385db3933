// What the test origin servers (http_test_server.hpp, https_test_server.hpp) share: the header
// block their /headers and /record routes answer with, and the N of a "?n=N" query.
#pragma once

#include <boost/beast/http.hpp>

#include <cstdint>
#include <string>

namespace forkvm::test {

/// The request's header fields as received, one "Name: value" line each.
template <class Request>
std::string header_block(const Request& request) {
  std::string block;
  for (const auto& field : request) {
    block += std::string(field.name_string()) + ": " + std::string(field.value()) + "\n";
  }
  return block;
}

/// N of "...?n=N" in `target`, at most `max`; 0 without one.
inline uint64_t query_n(const std::string& target, uint64_t max) {
  const auto pos = target.find("?n=");
  if (pos == std::string::npos) return 0;
  const uint64_t n = std::stoull(target.substr(pos + 3));
  return n > max ? max : n;
}

}  // namespace forkvm::test
