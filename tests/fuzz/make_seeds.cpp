// Writes the seed corpus of every fuzz target: `forkvm-fuzz-seeds DIR` creates DIR/<target>/
// with a few small, valid inputs each, built with the same encoders the code under test
// decodes (protocol::encode, vsock::encode, encode_state, encode_components) and the input
// layouts of the harnesses (fuzz_input.hpp). The committed tests/fuzz/corpus is its output;
// the `fuzz_seeds_current` test checks that it still is. Deterministic: no time, no randomness.
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "contract/protocol/frame.hpp"
#include "contract/protocol/hello.hpp"
#include "devices/virtio/block/virtio_blk.hpp"
#include "devices/virtio/descriptor_chain.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/vsock/packet.hpp"
#include "snapshot/state_file.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/unit/arch/arch_test_util.hpp"
#include "tests/unit/state/sample_components.hpp"
#include "vmm/machine_components.hpp"
#include "vmm/touches_cache.hpp"

using namespace forkvm;
using nlohmann::json;
using Bytes = std::vector<uint8_t>;

namespace {

std::filesystem::path g_root;

void write_seed(const std::string& target, const std::string& name, const Bytes& bytes) {
  const auto dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void write_seed(const std::string& target, const std::string& name, std::string_view text) {
  write_seed(target, name, Bytes(text.begin(), text.end()));
}

template <typename T>
void append(Bytes& b, T value) {
  static_assert(std::is_integral_v<T>);
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  b.insert(b.end(), p, p + sizeof(T));  // x86-64: little-endian, as the harnesses read
}
void append_text(Bytes& b, std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }

// ---- agent protocol -----------------------------------------------------------------------

std::string frame(json header, std::string payload = {}) {
  return protocol::encode(protocol::Frame{std::move(header), std::move(payload)});
}

void protocol_seeds() {
  const std::string hello = frame(protocol::make_hello().header);
  // A host's requests, fed in 7-byte chunks.
  Bytes requests{6};
  append_text(requests, hello);
  append_text(requests, frame({{"type", "exec"}, {"id", 1}, {"argv", {"/bin/echo", "hi"}},
                          {"env", {{"LANG", "C"}}}, {"cwd", "/tmp"}, {"timeout_ms", 500}}));
  append_text(requests, frame({{"type", "set_env"}, {"id", 2}, {"env", {{"PATH", "/bin"}, {"X", ""}}}}));
  append_text(requests, frame({{"type", "set_secret"}, {"id", 3}, {"name", "api_key"}}, "s3cret"));
  append_text(requests, frame({{"type", "write_file"}, {"id", 4}, {"path", "/tmp/f"}, {"mode", 0644}}));
  append_text(requests, frame({{"type", "file_data"}, {"id", 4}}, "contents"));
  append_text(requests, frame({{"type", "file_end"}, {"id", 4}}));
  append_text(requests, frame({{"type", "mkdir"}, {"id", 5}, {"path", "/tmp/d"}, {"parents", true}}));
  write_seed("fuzz_protocol_frame", "requests", requests);
  // An identity request with MAC addresses and a hostname, in one chunk.
  Bytes identity{255};
  append_text(identity, frame({{"type", "identity"}, {"id", 9}, {"wall_clock_ns", 1700000000000000000},
                          {"hostname", "child-1"}, {"mac_from", "02:00:00:00:00:01"},
                          {"mac_to", "02:ab:cd:ef:01:23"}},
                         std::string(32, 'e')));
  write_seed("fuzz_protocol_frame", "identity", identity);
  // An agent's replies, byte by byte.
  Bytes replies{0};
  append_text(replies, hello);
  append_text(replies, frame({{"type", "started"}, {"id", 1}, {"pid", 42}}));
  append_text(replies, frame({{"type", "stdout"}, {"id", 1}}, "hi\n"));
  append_text(replies, frame({{"type", "exit"}, {"id", 1}, {"exit_code", 0}, {"duration_ms", 3},
                         {"stdout_truncated", false}}));
  append_text(replies, frame({{"type", "exit"}, {"id", 6}, {"signal", 9}, {"timed_out", true}}));
  append_text(replies, frame({{"type", "ok"}, {"id", 7}, {"kind", "file"}, {"size", 12},
                         {"mode", 0644}, {"mtime_ns", 5}}));
  append_text(replies, frame({{"type", "ok"}, {"id", 8}, {"entries",
                         {{{"name", "a"}, {"kind", "dir"}, {"size", 0}, {"mode", 0755}}}}}));
  append_text(replies, frame({{"type", "error"}, {"id", 5}, {"code", "not_found"},
                         {"message", "no such file \x1b[31m"}}));
  write_seed("fuzz_protocol_frame", "replies", replies);
}

// ---- virtqueues over guest RAM ------------------------------------------------------------

// A queue of 8 at desc 0x100, avail 0x300, used 0x400; buffers from 0x800 up. The RAM image
// ends where the last thing written ends.
struct Ring {
  static constexpr uint16_t kSize = 8;
  static constexpr uint64_t kDesc = 0x100, kAvail = 0x300, kUsed = 0x400;
  Bytes ram = Bytes(0x800, 0);
  uint16_t avail_idx = 0;

  void put(uint64_t at, const void* p, size_t n) {
    if (ram.size() < at + n) ram.resize(at + n, 0);
    std::memcpy(ram.data() + at, p, n);
  }
  template <typename T>
  void put(uint64_t at, T v) { put(at, &v, sizeof v); }
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    put(kDesc + 16ull * i, VirtqDesc{addr, len, flags, next});
  }
  void publish(uint16_t head) {
    put<uint16_t>(kAvail + 4 + 2ull * (avail_idx % kSize), head);
    put<uint16_t>(kAvail + 2, ++avail_idx);
  }
  // The harness input: the QueueInput header, then the RAM image.
  Bytes input(Bytes prefix = {}) const {
    append(prefix, kSize);
    append(prefix, kDesc);
    append(prefix, kAvail);
    append(prefix, kUsed);
    prefix.insert(prefix.end(), ram.begin(), ram.end());
    return prefix;
  }
};

void virtqueue_seeds() {
  Ring r;  // a request-like chain (16 readable, 8 readable, 32 writable) and a single buffer
  r.desc(0, 0x800, 16, kVirtqDescFNext, 1);
  r.desc(1, 0x810, 8, kVirtqDescFNext, 2);
  r.desc(2, 0x900, 32, kVirtqDescFWrite, 0);
  r.desc(3, 0xa00, 64, kVirtqDescFWrite, 0);
  r.publish(0);
  r.publish(3);
  r.put(0x800, std::string_view("readable bytes..").data(), 16);
  write_seed("fuzz_virtqueue", "two_chains", r.input());
  Ring loop;  // a cycle 0 -> 1 -> 0, which the walk must stop
  loop.desc(0, 0x800, 16, kVirtqDescFNext, 1);
  loop.desc(1, 0x810, 16, kVirtqDescFNext, 0);
  loop.publish(0);
  write_seed("fuzz_virtqueue", "cycle", loop.input());
}

void block_seeds() {
  Ring r;
  // Requests at 0x800 + 0x100 * k: header (readable), data, status byte (writable).
  const auto request = [&](uint16_t head, uint32_t type, uint64_t sector, uint32_t data_len,
                           bool data_writable) {
    const uint64_t base = 0x800 + 0x100ull * head;
    r.put(base, blk::RequestHeader{type, 0, sector});
    uint16_t d = head;
    if (data_len > 0) {
      r.desc(d, base, 16, kVirtqDescFNext, static_cast<uint16_t>(d + 1));
      ++d;
      r.desc(d, base + 0x10, data_len,
             static_cast<uint16_t>(kVirtqDescFNext | (data_writable ? kVirtqDescFWrite : 0)),
             static_cast<uint16_t>(d + 1));
    } else {
      r.desc(d, base, 16, kVirtqDescFNext, static_cast<uint16_t>(d + 1));
    }
    ++d;
    r.desc(d, base + 0xf0, 1, kVirtqDescFWrite, 0);
    r.publish(head);
  };
  request(0, blk::type::kIn, 1, 512, true);     // read sector 1
  request(3, blk::type::kOut, 2, 512, false);   // write sector 2 (data from RAM)
  request(6, blk::type::kFlush, 0, 0, false);
  write_seed("fuzz_block_request", "read_write_flush", r.input(Bytes{0}));
  write_seed("fuzz_block_request", "read_only_disk", r.input(Bytes{1}));
  Ring id;
  id.put(0x800, blk::RequestHeader{blk::type::kGetId, 0, 0});
  id.desc(0, 0x800, 16, kVirtqDescFNext, 1);
  id.desc(1, 0x810, 20, kVirtqDescFNext | kVirtqDescFWrite, 2);
  id.desc(2, 0x830, 1, kVirtqDescFWrite, 0);
  id.publish(0);
  write_seed("fuzz_block_request", "get_id", id.input(Bytes{2}));
}

void vsock_seeds() {
  Ring r;
  // Each packet is one descriptor: header and payload together.
  const auto packet = [&](uint16_t i, uint16_t op, uint32_t flags, std::string_view payload) {
    vsock::Header h;
    h.src_cid = 3;
    h.dst_cid = vsock::kHostCid;
    h.src_port = 5000;
    h.dst_port = 1234;  // where the harness's host program listens
    h.len = static_cast<uint32_t>(payload.size());
    h.type = vsock::type::kStream;
    h.op = op;
    h.flags = flags;
    h.buf_alloc = 64 * 1024;
    const uint64_t at = 0x800 + 0x80ull * i;
    const auto raw = vsock::encode(h);
    r.put(at, raw.data(), raw.size());
    r.put(at + raw.size(), payload.data(), payload.size());
    r.desc(i, at, static_cast<uint32_t>(raw.size() + payload.size()), 0, 0);
    r.publish(i);
  };
  packet(0, vsock::op::kRequest, 0, "");
  packet(1, vsock::op::kRw, 0, "hello host");
  packet(2, vsock::op::kCreditRequest, 0, "");
  packet(3, vsock::op::kCreditUpdate, 0, "");
  packet(4, vsock::op::kShutdown, vsock::shutdown::kBoth, "");
  packet(5, vsock::op::kRst, 0, "");
  write_seed("fuzz_vsock_tx", "connect_send_close", r.input());
}

// ---- the virtio-mmio register file --------------------------------------------------------

void mmio_seeds() {
  namespace reg = virtio_mmio;
  namespace st = virtio_status;
  Ring r;  // one read request for the block device behind the transport
  r.put(0x800, blk::RequestHeader{blk::type::kIn, 0, 0});
  r.desc(0, 0x800, 16, kVirtqDescFNext, 1);
  r.desc(1, 0x900, 512, kVirtqDescFNext | kVirtqDescFWrite, 2);
  r.desc(2, 0xb00, 1, kVirtqDescFWrite, 0);
  r.publish(0);
  Bytes in;
  append(in, static_cast<uint16_t>(r.ram.size()));
  in.insert(in.end(), r.ram.begin(), r.ram.end());
  const auto op = [&](bool write, uint64_t offset, uint32_t value) {
    append(in, static_cast<uint8_t>((write ? 1 : 0) | (2 << 1)));  // 4 bytes wide
    append(in, static_cast<uint16_t>(offset));
    append(in, value);
  };
  // The Linux driver's sequence (virtio 1.2 §3.1.1, §4.2.3.2).
  op(false, reg::kMagicValue, 0);
  op(false, reg::kVersion, 0);
  op(false, reg::kDeviceId, 0);
  op(true, reg::kStatus, 0);
  op(true, reg::kStatus, st::kAcknowledge);
  op(true, reg::kStatus, st::kAcknowledge | st::kDriver);
  op(true, reg::kDeviceFeaturesSel, 1);
  op(false, reg::kDeviceFeatures, 0);
  op(true, reg::kDriverFeaturesSel, 1);
  op(true, reg::kDriverFeatures, 1);  // VIRTIO_F_VERSION_1 (bit 32)
  op(true, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  op(false, reg::kStatus, 0);
  op(true, reg::kQueueSel, 0);
  op(false, reg::kQueueNumMax, 0);
  op(true, reg::kQueueNum, Ring::kSize);
  op(true, reg::kQueueDescLow, Ring::kDesc);
  op(true, reg::kQueueDescHigh, 0);
  op(true, reg::kQueueDriverLow, Ring::kAvail);
  op(true, reg::kQueueDriverHigh, 0);
  op(true, reg::kQueueDeviceLow, Ring::kUsed);
  op(true, reg::kQueueDeviceHigh, 0);
  op(true, reg::kQueueReady, 1);
  op(false, reg::kConfig, 0);  // capacity
  op(true, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  op(true, reg::kQueueNotify, 0);
  op(false, reg::kInterruptStatus, 0);
  op(true, reg::kInterruptAck, 1);
  op(false, reg::kConfigGeneration, 0);
  write_seed("fuzz_mmio_transport", "driver_handshake", in);
}

// ---- state.json ---------------------------------------------------------------------------

void state_seeds() {
  MachineComponents c = state::idle_vsock_components(3);
  // A connection table: the agent connection carried, another one reset at restore.
  auto& vsock = c.slots[0].vsock;
  vsock.connections_listed = true;
  vsock.carried.push_back({(1u << 30) + 1, 1024, 4096, 4096, 2048, 262144, 2048, false, 1});
  vsock.stale.emplace_back(1u << 30, 5555);
  snapshot::State s;
  s.machine.vcpus = 2;
  s.machine.memory_mib = 128;
  s.machine.cmdline = "console=ttyS0 reboot=k panic=1";
  s.machine.guest_cid = 3;
  s.memory_size = s.machine.memory_mib << 20;
  s.memory_chunks = snapshot::MemoryChunks{
      snapshot::kMemoryChunkBytes,
      std::vector<std::string>(s.memory_size / snapshot::kMemoryChunkBytes, std::string(64, 'a'))};
  s.components = encode_components(c);
  s.created = "2026-01-01T00:00:00Z";
  const std::string text = snapshot::encode_state(s);
  // The seed must get through to the components, or it would not seed them.
  (void)decode_components(snapshot::parse_state(text, "seed").components, 2,
                          {VirtioDeviceKind::kVsock});
  write_seed("fuzz_state_json", "two_vcpus_vsock", text);
}

// ---- text inputs --------------------------------------------------------------------------

void text_seeds() {
  write_seed("fuzz_metadata_line", "set_env", R"({"op":"set_env","id":1,"env":{"K":"V","X":""}})");
  write_seed("fuzz_metadata_line", "set_secret",
             R"({"op":"set_secret","id":"s","name":"api_key","value_b64":"c2VjcmV0"})");
  write_seed("fuzz_metadata_line", "ping", R"({"op":"ping","id":null})");
  write_seed("fuzz_egress_request", "connect",
             "CONNECT api.pypi.org:443 HTTP/1.1\r\nHost: api.pypi.org:443\r\n\r\n");
  write_seed("fuzz_egress_request", "connect_v6", "CONNECT [fd00::5]:80 HTTP/1.1\r\n\r\n");
  write_seed("fuzz_egress_request", "plain_get",
             "GET http://example.com/simple/pkg?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
  write_seed("fuzz_egress_request", "address",
             "POST http://10.1.2.3:8080/api HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  write_seed("fuzz_connect_line", "connect", "CONNECT 1234\n");
  write_seed("fuzz_connect_line", "max_port", "connect 4294967295\n");
  {
    // A memory size byte (0x0f: 16 MiB, fuzz target's rule) and the entry the cache keeps.
    TouchedMemory t;
    t.written = {{0, 4096}, {1 << 20, 8 * 4096}};
    t.read = {{4096, 4096}, {(16 << 20) - 4096, 4096}};
    write_seed("fuzz_first_touches", "two_lessons",
               std::string(1, '\x0f') + encode_first_touches(t, 16 << 20, 2));
  }
  write_seed("fuzz_launch_plan", "web", R"({"apps": [{"name": "web", "working_dir": "/srv",
  "env": {"K": "V", "LANG": "C"},
  "entrypoint": {"command": ["python3", "-m", "http.server"], "working_dir": "/srv/app",
                 "env": {"K": "V2"}}}]})");
}

// ---- kernel images ------------------------------------------------------------------------

void kernel_seeds() {
  x86::test::FakeBzImage bz;
  bz.payload_size = 4096;
  write_seed("fuzz_kernel_loader", "bzimage", bz.bytes());
  x86::test::FakeElf elf;
  write_seed("fuzz_kernel_loader", "vmlinux", elf.bytes());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: forkvm-fuzz-seeds DIR (writes DIR/<target>/<seed>)\n";
    return 2;
  }
  g_root = argv[1];
  protocol_seeds();
  virtqueue_seeds();
  block_seeds();
  vsock_seeds();
  mmio_seeds();
  state_seeds();
  text_seeds();
  kernel_seeds();
  return 0;
}
