// The text of a Boost.System error code in forkvm's messages: an errno (the system category,
// which Asio's socket calls report in) reads as base/text.hpp's errno_text(), so running out
// of descriptors on a listen or accept names the limit to raise; any other category keeps its
// own message.
#pragma once

#include <boost/system/error_code.hpp>

#include <string>

#include "base/text.hpp"

namespace forkvm::net {

/// `ec`'s message, with errno_text()'s advice for EMFILE and ENFILE.
inline std::string error_text(const boost::system::error_code& ec) {
  if (ec.category() == boost::system::system_category() ||
      ec.category() == boost::system::generic_category()) {
    return errno_text(ec.value());
  }
  return ec.message();
}

}  // namespace forkvm::net
