// The header blocks the egress proxy sends on: a guest's request re-sent upstream, and an
// upstream's response passed back. Pure functions over (name, value) lists, so they are tested
// without sockets. Hop-by-hop headers (RFC 9110 §7.6.1: Connection and every header it names,
// Keep-Alive, Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Upgrade)
// are dropped, and so are the ones the proxy sets itself (Host, Content-Length,
// Transfer-Encoding, Expect): the framing the proxy relays is the only framing sent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace forkvm::net {

/// Header fields in order, names as received.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// The fields of `fields` that go on: without hop-by-hop headers, those named in Connection,
/// and those the proxy sets itself (see the file comment).
HeaderList end_to_end_fields(const HeaderList& fields);

/// How the body after a header block is framed on the wire the proxy writes.
struct Framing {
  bool chunked = false;                   ///< Transfer-Encoding: chunked
  std::optional<uint64_t> content_length;  ///< Content-Length: n (when not chunked)
};

/// "Host:" value for a request to host:port (IPv6 in brackets, the port left out when it is
/// the default `default_port`).
std::string host_header(std::string_view host, uint16_t port, uint16_t default_port = 80);

/// The request header block sent upstream: "<method> <path> HTTP/1.1", Host, `fields`
/// (already end-to-end and with secrets applied), the framing and "Connection: close".
std::string request_head(std::string_view method, std::string_view path,
                         std::string_view host, const HeaderList& fields,
                         const Framing& framing);

/// The response header block sent to the guest: "HTTP/1.1 <status> <reason>", `fields`
/// (end-to-end), the framing and "Connection: close".
std::string response_head(unsigned status, std::string_view reason, const HeaderList& fields,
                          const Framing& framing);

/// X-Forkvm-Egress of the answer to a request whose host name did not resolve (502):
/// http_request() turns it into EgressUnresolvableError.
inline constexpr const char* kUnresolvableMarker = "unresolvable";

/// A complete error answer from the proxy itself: text/plain body "forkvm egress proxy: <text>"
/// and an X-Forkvm-Egress header naming the outcome: `marker` when set (printable, no CR or LF:
/// "upstream TLS: certificate verify failed (...)"), else "denied" for 403 and "error".
std::string refusal_response(int status, std::string_view text, std::string_view marker = {});

}  // namespace forkvm::net
