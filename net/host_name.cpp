#include "net/host_name.hpp"

#include <boost/system/error_code.hpp>

#include "net/http_text.hpp"

namespace forkvm::net {
namespace {

constexpr std::size_t kMaxHostNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// Whether a label is a number as inet_aton() or the WHATWG URL parser reads one: decimal or
/// octal digits, or "0x" followed by hex digits (possibly none).
bool is_numeric_label(std::string_view label) noexcept {
  if (label.empty()) return false;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    for (char c : label.substr(2)) {
      if (!is_hex_digit(c)) return false;
    }
    return true;
  }
  for (char c : label) {
    if (!is_digit(c)) return false;
  }
  return true;
}

HostCheck refuse_host(std::string error) { return HostCheck{std::nullopt, std::move(error)}; }

HostCheck address_host(const boost::asio::ip::address& address) {
  return HostCheck{NormalizedHost{HostKind::kAddress, address.to_string(), address}, {}};
}

HostCheck check_ipv6(const std::string& text) {
  boost::system::error_code ec;
  const auto v6 = boost::asio::ip::make_address_v6(text, ec);
  if (ec) return refuse_host("not an IPv6 address: " + in_quotes(text));
  return address_host(v6);
}

HostCheck check_ipv4(const std::string& text) {
  boost::system::error_code ec;
  const auto v4 = boost::asio::ip::make_address_v4(text, ec);
  if (ec) return refuse_host("not an IPv4 address: " + in_quotes(text));
  return address_host(v4);
}

/// Checks the labels of a name (already lower-case, without its trailing dot).
std::string name_problem(std::string_view name) {
  if (name.size() > kMaxHostNameLength) {
    return "host name longer than " + std::to_string(kMaxHostNameLength) + " characters";
  }
  std::string_view last;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    const std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return "empty label in host name " + in_quotes(name);
    if (label.size() > kMaxLabelLength) {
      return "label longer than " + std::to_string(kMaxLabelLength) + " characters in " +
             in_quotes(name);
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_')) {
        return "character " + in_quotes(std::string_view(&c, 1)) + " not allowed in host name " +
               in_quotes(name);
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      return "label starting or ending with '-' in " + in_quotes(name);
    }
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (is_numeric_label(last)) {
    return "numeric host " + in_quotes(name) +
           " is not a dotted quad (resolvers would read it as an address)";
  }
  return {};
}

}  // namespace

bool is_strict_dotted_quad(std::string_view text) noexcept {
  int parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t digits = 0;
    unsigned value = 0;
    while (i < text.size() && is_digit(text[i]) && digits < 4) {
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0 || digits > 3 || value > 255) return false;
    if (digits > 1 && text[i - digits] == '0') return false;  // leading zero: octal to some
    ++parts;
    if (i == text.size()) return parts == 4;
    if (text[i] != '.' || parts == 4) return false;
    ++i;
  }
}

HostCheck normalize_host(std::string_view host) {
  if (host.empty()) return refuse_host("empty host");
  if (host.size() > kMaxHostNameLength + 1) {
    return refuse_host("host longer than " + std::to_string(kMaxHostNameLength) + " characters");
  }
  for (char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return refuse_host("control, space or non-ASCII byte in host " + in_quotes(host));
    }
    if (c == '%') return refuse_host("zone id or escape ('%') in host " + in_quotes(host));
    if (c == '[' || c == ']') {
      return refuse_host("brackets in host " + in_quotes(host) + " (give IPv6 without them)");
    }
  }
  std::string text = ascii_lower(host);
  if (text.find(':') != std::string::npos) return check_ipv6(text);
  if (text.back() == '.') text.pop_back();
  if (text.empty()) return refuse_host("empty host name");
  if (is_strict_dotted_quad(text)) return check_ipv4(text);
  if (std::string problem = name_problem(text); !problem.empty()) return refuse_host(std::move(problem));
  return HostCheck{NormalizedHost{HostKind::kName, std::move(text), {}}, {}};
}

}  // namespace forkvm::net
