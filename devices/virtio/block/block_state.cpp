#include "devices/virtio/block/block_state.hpp"

#include "base/json_reader.hpp"
#include "devices/virtio/block/virtio_blk.hpp"

namespace forkvm {

nlohmann::json to_json(const BlockDevice::State& s) {
  return {{"id", s.id}, {"sectors", s.sectors}, {"read_only", s.read_only}};
}

BlockDevice::State block_state_from_json(const nlohmann::json& j) {
  JsonReader r(j, "blk");
  BlockDevice::State s;
  s.id = r.string("id", 64);
  if (s.id.empty()) r.fail("id", "is empty");
  if (const std::string problem = BlockDevice::id_problem(s.id); !problem.empty()) {
    r.fail("id", problem);
  }
  s.sectors = r.num<uint64_t>("sectors", 1, UINT64_MAX >> blk::kSectorShift);
  s.read_only = r.boolean("read_only");
  r.finish();
  return s;
}

}  // namespace forkvm
