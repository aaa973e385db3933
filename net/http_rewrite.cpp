#include "net/http_rewrite.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace forkvm::net {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

const std::set<std::string>& dropped_always() {
  static const std::set<std::string> names = {
      "connection", "keep-alive",     "proxy-connection", "proxy-authorization",
      "proxy-authenticate", "te",     "trailer",          "upgrade",
      "host",       "content-length", "transfer-encoding", "expect"};
  return names;
}

void append_framing(std::string& head, const Framing& framing) {
  if (framing.chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  } else if (framing.content_length) {
    head += "Content-Length: " + std::to_string(*framing.content_length) + "\r\n";
  }
  head += "Connection: close\r\n\r\n";
}

void append_fields(std::string& head, const HeaderList& fields) {
  for (const auto& [name, value] : fields) head += name + ": " + value + "\r\n";
}

std::string_view reason_of(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

}  // namespace

HeaderList end_to_end_fields(const HeaderList& fields) {
  std::set<std::string> named;  // listed in Connection: hop-by-hop for this message
  for (const auto& [name, value] : fields) {
    if (lower(name) != "connection") continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      named.insert(lower(trim(rest.substr(0, comma))));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  HeaderList out;
  for (const auto& field : fields) {
    const std::string name = lower(field.first);
    if (dropped_always().count(name) != 0 || named.count(name) != 0) continue;
    out.push_back(field);
  }
  return out;
}

std::string host_header(std::string_view host, uint16_t port, uint16_t default_port) {
  std::string out = host.find(':') != std::string_view::npos
                        ? "[" + std::string(host) + "]"
                        : std::string(host);
  if (port != default_port) out += ":" + std::to_string(port);
  return out;
}

std::string request_head(std::string_view method, std::string_view path,
                         std::string_view host, const HeaderList& fields,
                         const Framing& framing) {
  std::string head;
  head += std::string(method) + " " + std::string(path) + " HTTP/1.1\r\n";
  head += "Host: " + std::string(host) + "\r\n";
  append_fields(head, fields);
  append_framing(head, framing);
  return head;
}

std::string response_head(unsigned status, std::string_view reason, const HeaderList& fields,
                          const Framing& framing) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  append_fields(head, fields);
  append_framing(head, framing);
  return head;
}

std::string refusal_response(int status, std::string_view text, std::string_view marker) {
  if (marker.empty()) marker = status == 403 ? "denied" : "error";
  const std::string body = "forkvm egress proxy: " + std::string(text) + "\n";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_of(status)) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Forkvm-Egress: " +
                    std::string(marker) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  return out + body;
}

}  // namespace forkvm::net
