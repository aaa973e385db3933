#include "devices/legacy/serial_state.hpp"

#include "base/json_reader.hpp"

namespace forkvm {

namespace {
constexpr std::string_view kSerialComponent = "serial";
}  // namespace

nlohmann::json to_json(const Serial::State& s) {
  return {{"ier", s.ier},       {"lcr", s.lcr},
          {"mcr", s.mcr},       {"fcr", s.fcr},
          {"lsr_errors", s.lsr_errors}, {"msr_deltas", s.msr_deltas},
          {"scr", s.scr},       {"dll", s.dll},
          {"dlm", s.dlm},       {"thr_interrupt", s.thr_interrupt},
          {"rx_fifo", json_blob(s.rx_fifo)}};
}

Serial::State serial_state_from_json(const nlohmann::json& j) {
  JsonReader r(j, std::string(kSerialComponent));
  Serial::State s;
  s.ier = r.num<uint8_t>("ier");
  s.lcr = r.num<uint8_t>("lcr");
  s.mcr = r.num<uint8_t>("mcr");
  s.fcr = r.num<uint8_t>("fcr");
  s.lsr_errors = r.num<uint8_t>("lsr_errors");
  s.msr_deltas = r.num<uint8_t>("msr_deltas");
  s.scr = r.num<uint8_t>("scr");
  s.dll = r.num<uint8_t>("dll");
  s.dlm = r.num<uint8_t>("dlm");
  s.thr_interrupt = r.boolean("thr_interrupt");
  s.rx_fifo = r.blob("rx_fifo", 0, Serial::kFifoSize);
  r.finish();
  // Bits the UART lacks, FCR consistency and the FIFO length for the FIFO mode. Throws
  // LegacyDeviceError, which is a SnapshotError naming the register.
  Serial::validate(s);
  return s;
}

}  // namespace forkvm
