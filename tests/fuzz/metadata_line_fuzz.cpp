// Fuzz target: one request line of the port-5555 NDJSON metadata protocol as the agent answers
// it (guest-init/agent/metadata.hpp handle_metadata_line, noexcept) on a real EnvStore in a
// temporary directory: the JSON parse, the id, set_env and set_secret with base64 values, and
// the env and secret files they write. The answer is always one JSON line.
//
// Every input starts from an empty store: the files an input wrote are removed after it. A store
// that kept growing across inputs made each execution re-read and rewrite every key earlier
// inputs set (80 KB env files, ~800 exec/s) and made an input's coverage depend on its history.
#include <cstdint>
#include <filesystem>
#include <system_error>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "guest-init/agent/env_store.hpp"
#include "guest-init/agent/metadata.hpp"
#include "tests/support/temp_dir.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static forkvm::test::TempDir dir("fvmeta");
  static forkvm::agent::EnvStore store(dir.path().string());
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const std::string answer = forkvm::agent::handle_metadata_line(line, store);
  if (answer.empty() || answer.back() != '\n') __builtin_trap();
  const auto reply = nlohmann::json::parse(answer, nullptr, /*allow_exceptions=*/false);
  if (!reply.is_object() || !reply.contains("ok")) __builtin_trap();
  // What the store holds stays readable (set_env rewrote the file atomically).
  (void)store.load();
  (void)forkvm::agent::decode_base64(line);
  std::error_code ignored;
  std::filesystem::remove(store.env_file(), ignored);
  std::filesystem::remove_all(store.secrets_dir(), ignored);
  return 0;
}
