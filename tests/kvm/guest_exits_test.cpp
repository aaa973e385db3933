// kvm tier: hand-assembled long-mode guests on a real /dev/kvm. Each test asserts the exact
// sequence of exits and what the devices saw (offset, size, bytes).
#include <gtest/gtest.h>

#include <cstring>

#include "tests/kvm/test_guest.hpp"

namespace forkvm::test {
namespace {

using Bytes = std::vector<uint8_t>;

void append(Bytes& code, std::initializer_list<uint8_t> bytes) { code.insert(code.end(), bytes); }
void append_u64(Bytes& code, uint64_t v) {
  for (int i = 0; i < 8; ++i) code.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

TEST(KvmGuest, PortWritesReachTheDeviceWithOffsetAndSize) {
  TestGuest g({
      0x66, 0xBA, 0xFB, 0x03,        // mov dx, 0x3fb
      0xB0, 0x41,                    // mov al, 0x41
      0xEE,                          // out dx, al
      0x66, 0xBA, 0xF8, 0x03,        // mov dx, 0x3f8
      0x66, 0xB8, 0x34, 0x12,        // mov ax, 0x1234
      0x66, 0xEF,                    // out dx, ax
      0xB8, 0x78, 0x56, 0x34, 0x12,  // mov eax, 0x12345678
      0xEF,                          // out dx, eax
      0xF4,                          // hlt
  });
  auto dev = std::make_shared<RecordingDevice>();
  g.pio.insert(dev, 0x3f8, 8);
  const auto exits = g.run_until_hlt();
  ASSERT_EQ(exits.size(), 4u);
  EXPECT_EQ(exits[0], "io out port 0x3fb size 1 count 1");
  EXPECT_EQ(exits[1], "io out port 0x3f8 size 2 count 1");
  EXPECT_EQ(exits[2], "io out port 0x3f8 size 4 count 1");
  EXPECT_EQ(exits[3], "hlt");
  ASSERT_EQ(dev->accesses.size(), 3u);
  EXPECT_EQ(dev->accesses[0].offset, 3u);
  EXPECT_EQ(dev->accesses[0].data, Bytes{0x41});
  EXPECT_EQ(dev->accesses[1].data, (Bytes{0x34, 0x12}));
  EXPECT_EQ(dev->accesses[2].data, (Bytes{0x78, 0x56, 0x34, 0x12}));
}

TEST(KvmGuest, PortReadsReturnWhatTheDeviceAnswered) {
  TestGuest g({
      0x66, 0xBA, 0xF9, 0x03,  // mov dx, 0x3f9
      0xEC,                    // in al, dx        (device answers 0x5a)
      0x66, 0xBA, 0xF8, 0x03,  // mov dx, 0x3f8
      0xEE,                    // out dx, al       (echo it back)
      0x66, 0xED,              // in ax, dx        (device answers 0x5b5b)
      0x66, 0xEF,              // out dx, ax
      0xF4,                    // hlt
  });
  auto dev = std::make_shared<RecordingDevice>();
  g.pio.insert(dev, 0x3f8, 8);
  const auto exits = g.run_until_hlt();
  ASSERT_EQ(exits.size(), 5u);
  EXPECT_EQ(exits[0], "io in port 0x3f9 size 1 count 1");
  ASSERT_EQ(dev->accesses.size(), 4u);
  EXPECT_EQ(dev->accesses[0].offset, 1u);
  EXPECT_FALSE(dev->accesses[0].write);
  EXPECT_EQ(dev->accesses[1].data, Bytes{0x5a});
  EXPECT_EQ(dev->accesses[3].data, (Bytes{0x5b, 0x5b}));
}

TEST(KvmGuest, MmioAccessesReachTheDeviceWithOffsetAndSize) {
  Bytes code;
  append(code, {0x48, 0xBB});
  append_u64(code, kMmioBase);                                // movabs rbx, kMmioBase
  append(code, {0xC7, 0x43, 0x10, 0xEF, 0xBE, 0xAD, 0xDE});   // mov dword [rbx+0x10], 0xdeadbeef
  append(code, {0x8B, 0x43, 0x20});                           // mov eax, [rbx+0x20]
  append(code, {0x89, 0x43, 0x30});                           // mov [rbx+0x30], eax
  append(code, {0x48, 0x8B, 0x43, 0x40});                     // mov rax, [rbx+0x40]
  append(code, {0x88, 0x43, 0x08});                           // mov [rbx+0x08], al
  append(code, {0xF4});                                       // hlt
  TestGuest g(code);
  auto dev = std::make_shared<RecordingDevice>();
  g.mmio.insert(dev, kMmioBase, 0x1000);
  const auto exits = g.run_until_hlt();
  ASSERT_EQ(exits.size(), 6u);
  EXPECT_EQ(exits[0], "mmio write 0xd0000010 len 4");
  EXPECT_EQ(exits[1], "mmio read 0xd0000020 len 4");
  EXPECT_EQ(exits[3], "mmio read 0xd0000040 len 8");
  ASSERT_EQ(dev->accesses.size(), 5u);
  EXPECT_EQ(dev->accesses[0].offset, 0x10u);
  EXPECT_EQ(dev->accesses[0].data, (Bytes{0xEF, 0xBE, 0xAD, 0xDE}));
  EXPECT_EQ(dev->accesses[2].offset, 0x30u);
  EXPECT_EQ(dev->accesses[2].data, (Bytes{0x5a, 0x5a, 0x5a, 0x5a}));  // what the read returned
  EXPECT_EQ(dev->accesses[3].data.size(), 8u);
  EXPECT_EQ(dev->accesses[4].offset, 0x08u);
  EXPECT_EQ(dev->accesses[4].data, Bytes{0x5b});  // low byte of the 8-byte read
}

TEST(KvmGuest, RepOutsbDeliversEveryByteInOrder) {
  const uint64_t data_addr = kCodeStart + 0x100;
  Bytes code;
  append(code, {0x48, 0xBE});
  append_u64(code, data_addr);                     // movabs rsi, data_addr
  append(code, {0xB9, 0x05, 0x00, 0x00, 0x00});    // mov ecx, 5
  append(code, {0x66, 0xBA, 0xF8, 0x03});          // mov dx, 0x3f8
  append(code, {0xFC, 0xF3, 0x6E});                // cld; rep outsb
  append(code, {0xB9, 0x03, 0x00, 0x00, 0x00});    // mov ecx, 3
  append(code, {0x66, 0xF3, 0x6F});                // rep outsw (continues after "hello")
  append(code, {0xF4});                            // hlt
  code.resize(0x100, 0x90);
  for (char c : std::string("hello") + "AaBbCc") code.push_back(static_cast<uint8_t>(c));
  TestGuest g(code);
  auto dev = std::make_shared<RecordingDevice>();
  g.pio.insert(dev, 0x3f8, 8);
  const auto exits = g.run_until_hlt();
  EXPECT_EQ(exits.back(), "hlt");
  ASSERT_EQ(dev->accesses.size(), 8u);
  std::string seen;
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_EQ(dev->accesses[i].data.size(), 1u);
    seen.push_back(static_cast<char>(dev->accesses[i].data[0]));
  }
  EXPECT_EQ(seen, "hello");
  EXPECT_EQ(dev->accesses[5].data, (Bytes{'A', 'a'}));
  EXPECT_EQ(dev->accesses[7].data, (Bytes{'C', 'c'}));
}

TEST(KvmGuest, RepInsbFillsGuestMemoryFromTheDevice) {
  const uint64_t dest = 0x200000;
  Bytes code;
  append(code, {0x48, 0xBF});
  append_u64(code, dest);                          // movabs rdi, dest
  append(code, {0xB9, 0x04, 0x00, 0x00, 0x00});    // mov ecx, 4
  append(code, {0x66, 0xBA, 0xF8, 0x03});          // mov dx, 0x3f8
  append(code, {0xFC, 0xF3, 0x6C, 0xF4});          // cld; rep insb; hlt
  TestGuest g(code);
  auto dev = std::make_shared<RecordingDevice>();
  g.pio.insert(dev, 0x3f8, 8);
  EXPECT_EQ(g.run_until_hlt().back(), "hlt");
  EXPECT_EQ(dev->accesses.size(), 4u);
  EXPECT_EQ(g.memory.read_obj<uint32_t>(dest), 0x5d5c5b5au);
}

TEST(KvmGuest, UnmappedAccessIsCountedAndTheGuestGoesOn) {
  TestGuest g({
      0x66, 0xBA, 0x34, 0x12,  // mov dx, 0x1234
      0xEC,                    // in al, dx   (nobody there: 0xff)
      0x66, 0xBA, 0xF8, 0x03,  // mov dx, 0x3f8
      0xEE,                    // out dx, al
      0xF4,
  });
  auto dev = std::make_shared<RecordingDevice>();
  g.pio.insert(dev, 0x3f8, 8);
  EXPECT_EQ(g.run_until_hlt().back(), "hlt");
  EXPECT_EQ(g.pio.unmapped_accesses(), 1u);
  ASSERT_EQ(dev->accesses.size(), 1u);
  EXPECT_EQ(dev->accesses[0].data, Bytes{0xff});
}

}  // namespace
}  // namespace forkvm::test
