#include "devices/legacy/serial_state.hpp"

#include "devices/state_json.hpp"

namespace forkvm {

namespace {
constexpr std::string_view kComponent = "serial";
}  // namespace

nlohmann::json to_json(const Serial::State& s) {
  return {{"ier", s.ier},       {"lcr", s.lcr},
          {"mcr", s.mcr},       {"fcr", s.fcr},
          {"lsr_errors", s.lsr_errors}, {"msr_deltas", s.msr_deltas},
          {"scr", s.scr},       {"dll", s.dll},
          {"dlm", s.dlm},       {"thr_interrupt", s.thr_interrupt},
          {"rx_fifo", state_json::blob(s.rx_fifo)}};
}

Serial::State serial_state_from_json(const nlohmann::json& j) {
  using namespace state_json;
  expect_object(j, kComponent,
                {"ier", "lcr", "mcr", "fcr", "lsr_errors", "msr_deltas", "scr", "dll", "dlm",
                 "thr_interrupt", "rx_fifo"});
  Serial::State s;
  s.ier = get_uint<uint8_t>(j, kComponent, "ier");
  s.lcr = get_uint<uint8_t>(j, kComponent, "lcr");
  s.mcr = get_uint<uint8_t>(j, kComponent, "mcr");
  s.fcr = get_uint<uint8_t>(j, kComponent, "fcr");
  s.lsr_errors = get_uint<uint8_t>(j, kComponent, "lsr_errors");
  s.msr_deltas = get_uint<uint8_t>(j, kComponent, "msr_deltas");
  s.scr = get_uint<uint8_t>(j, kComponent, "scr");
  s.dll = get_uint<uint8_t>(j, kComponent, "dll");
  s.dlm = get_uint<uint8_t>(j, kComponent, "dlm");
  s.thr_interrupt = get_bool(j, kComponent, "thr_interrupt");
  s.rx_fifo = get_blob(j, kComponent, "rx_fifo", Serial::kFifoSize);
  // Bits the UART lacks, FCR consistency and the FIFO length for the FIFO mode. Throws
  // LegacyDeviceError, which is a SnapshotError naming the register.
  Serial::validate(s);
  return s;
}

}  // namespace forkvm
