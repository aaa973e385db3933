// Small checks on the text of HTTP and of the egress configuration: tokens (methods, header
// names), control characters, case-insensitive comparison, and a quoting that keeps untrusted
// bytes out of error messages and logs.
#pragma once

#include <string>
#include <string_view>

namespace forkvm::net {

/// Whether `c` is an RFC 9110 tchar: ALPHA, DIGIT or one of !#$%&'*+-.^_`|~.
bool is_token_char(char c) noexcept;

/// Whether `text` is an RFC 9110 token (one or more tchars): a method or a header field name.
bool is_http_token(std::string_view text) noexcept;

/// Whether `text` holds an ASCII control character (0x00..0x1f or 0x7f).
bool has_control_char(std::string_view text) noexcept;

/// ASCII case-insensitive equality ("Authorization" == "authorization").
bool iequals(std::string_view a, std::string_view b) noexcept;

/// `text` with ASCII letters lower-cased; other bytes unchanged.
std::string ascii_lower(std::string_view text);

/// `text` with every byte that is not printable ASCII, the space, the double quote and the
/// backslash written as \xNN, so a hostile or broken value cannot forge log lines or split
/// words ("a b" is "a\x20b").
std::string escaped(std::string_view text);

/// escaped(text) in double quotes, for messages: "\"pypi.org\"". Not named `quoted`: for a
/// std::string argument, argument-dependent lookup would prefer std::quoted wherever <iomanip> is
/// visible.
std::string in_quotes(std::string_view text);

}  // namespace forkvm::net
