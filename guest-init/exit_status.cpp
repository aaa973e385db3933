#include "guest-init/exit_status.hpp"

#include <sys/wait.h>

namespace forkvm {

uint32_t exit_status_from_wait(int wait_status) {
  if (WIFEXITED(wait_status)) return static_cast<uint32_t>(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) return 128u + static_cast<uint32_t>(WTERMSIG(wait_status));
  return 255;
}

}  // namespace forkvm
