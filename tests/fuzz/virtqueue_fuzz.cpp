// Fuzz target: a split virtqueue over in-memory guest RAM whose every byte the fuzzer chooses
// (fuzz_input.hpp QueueInput): validation at activation, pop() with the available ring's index
// and heads, the descriptor chain walk (DescriptorChain::walk through pop_chain), reading and
// writing the chain's buffers (chain_io Reader/Writer), add_used, undo_pop and the snapshot
// state, which must stay consistent (Queue::check_state) whatever the guest did.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <vector>

#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/queue.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace forkvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const GuestMemory mem = GuestMemory::create_anonymous(fuzz::kGuestRamBytes);
  fuzz::ByteReader in(data, size);
  const fuzz::QueueInput qi = fuzz::read_queue_input(in, mem);
  // A cap well below the default, so that the total-length check is reached with small RAM.
  Queue queue = fuzz::make_queue(qi, Queue::kDefaultMaxSize, 16 * 1024);
  if (!queue.validate(mem)) return 0;

  std::vector<uint8_t> buf(512);
  // Bounded: the guest may point a writable buffer or the used ring at its own available
  // ring, so that what the device writes publishes more chains (it only keeps its own device
  // busy, as with a real driver that keeps queueing).
  for (int pops = 0; pops < 4 * queue.size() + 8; ++pops) {
    auto chain = queue.pop_chain(mem);
    if (!chain) break;
    Reader reader(mem, *chain);
    while (reader.read(buf) > 0) {
    }
    Writer writer(mem, *chain);
    size_t written = 0;
    while (size_t n = writer.write(buf)) written += n;
    (void)queue.driver_avail_idx(mem);
    (void)queue.interrupt_wanted(mem);
    // Every fourth chain is given back once and taken again, as a device does before a snapshot.
    if (pops % 4 == 3 && queue.undo_pop()) continue;
    if (!queue.add_used(mem, chain->head(), static_cast<uint32_t>(written))) break;
  }
  // Whatever the guest wrote, the queue's own state stays consistent and restorable.
  const Queue::State state = queue.save_state();
  try {
    Queue::check_state(state, "fuzz");
    Queue restored(Queue::kDefaultMaxSize, 16 * 1024);
    restored.restore_state(state, mem, "fuzz");
  } catch (const SnapshotError& e) {
    std::fprintf(stderr, "virtqueue_fuzz: a live queue's state does not restore: %s\n", e.what());
    std::abort();
  }
  return 0;
}
