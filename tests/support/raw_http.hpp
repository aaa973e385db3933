// Reading a raw HTTP/1.1 response as the egress proxy tests receive it from their own clients.
#pragma once

#include <string>

namespace forkvm::test {

/// The status code of "HTTP/1.1 NNN ...", or 0 when the text does not start like that.
inline int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

/// Everything after the header block ("" without one).
inline std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

}  // namespace forkvm::test
