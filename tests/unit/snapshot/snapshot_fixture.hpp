// Shared by the snapshot and CLI unit tests: a temporary directory, a small guest memory with a
// known pattern in a few pages, and helpers that damage a snapshot in one specific way.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "memory/guest_memory.hpp"
#include "snapshot/sha256.hpp"
#include "snapshot/snapshot.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::snapshot::test {

namespace fs = std::filesystem;

using forkvm::test::TempDir;

inline constexpr uint64_t kTestMib = 64;  // the smallest machine a snapshot may describe
inline constexpr uint64_t kPage = 4096;

/// Guest-physical addresses of the pages the pattern fills.
inline const std::vector<uint64_t>& pattern_pages() {
  static const std::vector<uint64_t> pages = {0, 0x100000 + kPage, 17 * 0x100000,
                                              kTestMib * 0x100000 - kPage};
  return pages;
}

/// The byte the pattern puts at `gpa` (never zero, so every pattern page is data).
inline uint8_t pattern_byte(uint64_t gpa) {
  return static_cast<uint8_t>(1 + (gpa * 7 + gpa / kPage) % 251);
}

/// 64 MiB of anonymous guest memory, zero except for pattern_pages().
inline GuestMemory patterned_memory() {
  GuestMemory mem = GuestMemory::create_anonymous(kTestMib << 20);
  std::vector<uint8_t> page(kPage);
  for (uint64_t gpa : pattern_pages()) {
    for (uint64_t i = 0; i < kPage; ++i) page[i] = pattern_byte(gpa + i);
    mem.write(gpa, page);
  }
  return mem;
}

inline MachineConfig test_machine() {
  MachineConfig m;
  m.vcpus = 2;
  m.memory_mib = kTestMib;
  m.cmdline = "console=ttyS0 reboot=k panic=1";
  m.guest_cid = 7;
  return m;
}

inline nlohmann::json test_components() {
  return {{"serial", {{"ier", 1}, {"lcr", 3}}},
          {"vcpu.0", {{"regs", {{"rip", 4096}, {"rsp", 8192}}}, {"xsave", "AAAA"}}},
          {"i8042", nlohmann::json::object()}};
}

/// Writes the standard test snapshot to `dir`.
inline WrittenSnapshot write_test_snapshot(const fs::path& dir) {
  const GuestMemory mem = patterned_memory();
  return write_snapshot(dir, test_machine(), test_components(), mem);
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
}

/// Replaces state.json with `text` and writes its correct digest, so that only the content
/// (not the digest check) is what the reader objects to.
inline void replace_state(const fs::path& dir, const std::string& text) {
  write_file(dir / kStateFile, text);
  write_file(dir / kStateDigestFile, Sha256::of(text) + "  state.json\n");
}

/// Edits state.json as JSON and re-digests it.
inline void edit_state(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(read_file(dir / kStateFile));
  edit(j);
  replace_state(dir, j.dump(2));
}

/// XORs the byte at `offset` of `file` with 0x01.
inline void flip_byte(const fs::path& file, uint64_t offset) {
  const int fd = ::open(file.c_str(), O_RDWR);
  if (fd < 0) throw std::runtime_error("open " + file.string());
  uint8_t b = 0;
  if (pread(fd, &b, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("pread");
  b ^= 1;
  if (pwrite(fd, &b, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("pwrite");
  ::close(fd);
}

}  // namespace forkvm::snapshot::test
