#include "devices/legacy/serial.hpp"

#include <algorithm>
#include <string>

#include "devices/legacy/legacy_device_error.hpp"

namespace forkvm {
namespace {

// Register offsets (PC16550D Table II, "Register Addresses").
constexpr uint64_t kRbrThr = 0;  // DLAB=0: RBR (read) / THR (write); DLAB=1: DLL
constexpr uint64_t kIer = 1;     // DLAB=0: IER; DLAB=1: DLM
constexpr uint64_t kIirFcr = 2;  // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

// IER bits (PC16550D §8.6 "Interrupt Enable Register"). Bits 4-7 are always 0.
constexpr uint8_t kIerRdi = 0x01;   // received data available (and character timeout)
constexpr uint8_t kIerThri = 0x02;  // transmitter holding register empty
constexpr uint8_t kIerRlsi = 0x04;  // receiver line status
constexpr uint8_t kIerMsi = 0x08;   // modem status
constexpr uint8_t kIerMask = 0x0f;

// IIR values (PC16550D Table IV, "Interrupt Control Functions").
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirMsi = 0x00;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirRdi = 0x04;
constexpr uint8_t kIirRlsi = 0x06;
constexpr uint8_t kIirTimeout = 0x0c;
constexpr uint8_t kIirFifosEnabled = 0xc0;  // bits 6-7 set whenever FCR0 = 1

// FCR bits (PC16550D §8.5 "FIFO Control Register").
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kFcrDma = 0x08;
constexpr uint8_t kFcrTrigger = 0xc0;
constexpr uint8_t kFcrSticky = kFcrEnable | kFcrDma | kFcrTrigger;  // bits 1-2 self-clear

constexpr uint8_t kLcrDlab = 0x80;

// MCR bits (PC16550D §8.7 "Modem Control Register"). Bits 5-7 are always 0.
constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

// LSR bits (PC16550D §8.4 "Line Status Register").
constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrOe = 0x02;
constexpr uint8_t kLsrErrors = 0x1e;  // OE, PE, FE, BI: cleared by reading LSR
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;

// MSR bits (PC16550D §8.8 "Modem Status Register").
constexpr uint8_t kMsrDcts = 0x01;
constexpr uint8_t kMsrDdsr = 0x02;
constexpr uint8_t kMsrTeri = 0x04;
constexpr uint8_t kMsrDdcd = 0x08;
constexpr uint8_t kMsrDeltas = 0x0f;
constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;
/// Modem lines outside loopback: a terminal that is present and ready (CTS, DSR and DCD
/// asserted, no ring), the same lines QEMU and Firecracker's UART report.
constexpr uint8_t kMsrIdleLines = kMsrCts | kMsrDsr | kMsrDcd;

/// Bytes the guest transmits during one bus access, handed to the sink after the lock drops.
struct TxBytes {
  std::array<uint8_t, Serial::kRegisterCount> bytes{};
  size_t size = 0;
};

std::string hex8(unsigned v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[(v >> 4) & 0xf] + kDigits[v & 0xf];
}

}  // namespace

Serial::Serial(std::shared_ptr<IrqLine> irq, OutputSink sink)
    : irq_(std::move(irq)), sink_(std::move(sink)) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) {
    // Guest-controlled: offset and size. Bytes past register 7 keep the bus's fill value.
    if (offset >= kRegisterCount || i >= kRegisterCount - offset) {
      counters_.ignored_accesses += data.size() - i;
      break;
    }
    data[i] = read_register(offset + i);
  }
  update_irq();
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  TxBytes tx;
  {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
      // Guest-controlled: offset and size, as in read().
      if (offset >= kRegisterCount || i >= kRegisterCount - offset) {
        counters_.ignored_accesses += data.size() - i;
        break;
      }
      if (write_register(offset + i, data[i])) tx.bytes[tx.size++] = data[i];
    }
    update_irq();
  }
  if (tx.size == 0 || !sink_) return;
  // The sink runs outside mutex_ so a slow console does not stall other vCPUs' register
  // accesses; sink_mutex_ keeps it single-threaded and the bytes in THR-write order for any
  // guest that serializes its THR writes (Linux holds the port lock around them).
  std::lock_guard sink_lock(sink_mutex_);
  try {
    sink_(std::span<const uint8_t>(tx.bytes.data(), tx.size));
  } catch (...) {
    // A failing sink loses output; it must not unwind into the vCPU loop.
  }
}

uint8_t Serial::read_register(uint64_t offset) {
  switch (offset) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) return dll_;
      // Reading RBR clears the data-available and timeout interrupts once the FIFO drains
      // below the trigger level (PC16550D Table IV); both are recomputed from rx_count_.
      return pop_rx();
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIirFcr: {
      const uint8_t id = interrupt_id();
      // PC16550D Table IV: the THRE interrupt is reset by "reading the IIR register (if source
      // of interrupt)". Only when THRE is what this read reports; a higher-priority interrupt
      // leaves it pending.
      if (id == kIirThri) thr_interrupt_ = false;
      return static_cast<uint8_t>(id | (fifo_enabled() ? kIirFifosEnabled : 0));
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      const uint8_t lsr = static_cast<uint8_t>((rx_count_ > 0 ? kLsrDr : 0) | lsr_errors_ |
                                               kLsrThre | kLsrTemt);
      // PC16550D §8.4: OE, PE, FE and BI are reset whenever the CPU reads the LSR, which also
      // clears the receiver-line-status interrupt.
      lsr_errors_ = 0;
      return lsr;
    }
    case kMsr: {
      // PC16550D §8.8: reading MSR resets the delta bits (and the modem status interrupt).
      const uint8_t msr = static_cast<uint8_t>(modem_inputs() | msr_deltas_);
      msr_deltas_ = 0;
      return msr;
    }
    case kScr:
      return scr_;
    default:
      return 0xff;  // unreachable: callers pass offsets 0-7
  }
}

bool Serial::write_register(uint64_t offset, uint8_t value) {
  switch (offset) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return false;
      }
      // PC16550D Table IV: the THRE interrupt is reset by writing THR and set again when THR
      // empties, which here is at once: the byte leaves without baud-rate timing, so THR and
      // the transmitter shift register are empty by the time the guest next reads LSR. Linux's
      // 8250 driver transmits from this interrupt.
      thr_interrupt_ = true;
      if (!(mcr_ & kMcrLoop)) {
        ++counters_.tx_bytes;
        return true;
      }
      // Loopback (PC16550D §8.7): the transmitter shift register feeds the receiver instead of
      // the line. A full receiver is an overrun: the new byte is lost and OE set; the FIFO
      // contents are not overwritten.
      if (!push_rx(value)) {
        lsr_errors_ |= kLsrOe;
        ++counters_.rx_dropped;
      }
      return false;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
      } else {
        write_ier(value);
      }
      return false;
    case kIirFcr:
      write_fcr(value);
      return false;
    case kLcr:
      lcr_ = value;
      return false;
    case kMcr:
      write_mcr(value);
      return false;
    case kLsr:
    case kMsr:
      // PC16550D §8.4 and §8.8: LSR and MSR are status registers; writes are meant for factory
      // test only and are ignored here, as in QEMU.
      return false;
    case kScr:
      scr_ = value;
      return false;
    default:
      return false;
  }
}

void Serial::write_ier(uint8_t value) {
  // Guest-controlled: bits 4-7 do not exist on a 16550A and read back as 0.
  const uint8_t next = value & kIerMask;
  const uint8_t changed = static_cast<uint8_t>(ier_ ^ next);
  ier_ = next;
  // Setting ETBEI while THR is empty raises a THRE interrupt even if an IIR read had cleared
  // the previous one. The datasheet does not say so, but real 16550s do it and Linux relies on
  // it: serial8250_do_startup() writes IER=THRI, reads IIR, writes IER=0 then IER=THRI, and
  // expects THRE to be reported again, else it marks the port UART_BUG_THRE and polls it from
  // a timer. Like QEMU (and Bochs) the interrupt is re-armed on the rising edge of ETBEI only,
  // and dropped when ETBEI is cleared. THR is always empty here (output is immediate).
  if (changed & kIerThri) thr_interrupt_ = (ier_ & kIerThri) != 0;
}

void Serial::write_fcr(uint8_t value) {
  // PC16550D §8.5: changing FCR0 clears both FIFOs, and FCR0 must be 1 for the other bits to
  // be programmed; with FCR0 = 0 the UART is in 16450 mode with a one-byte receiver.
  if ((value ^ fcr_) & kFcrEnable) clear_rx();
  if (value & kFcrEnable) {
    if (value & kFcrClearRx) clear_rx();  // FCR1: clear the RX FIFO (self-clearing bit)
    // FCR2 (clear TX FIFO) has nothing to clear: transmission is immediate.
    fcr_ = value & kFcrSticky;
  } else {
    fcr_ = 0;
  }
}

void Serial::write_mcr(uint8_t value) {
  const uint8_t before = modem_inputs();
  // Guest-controlled: bits 5-7 do not exist on a 16550A and read back as 0.
  mcr_ = value & kMcrMask;
  const uint8_t after = modem_inputs();
  // Entering or leaving loopback, or changing MCR inside it, changes the lines the UART sees;
  // the delta bits record it as they would for the external pins (PC16550D §8.8). TERI is set
  // only on the trailing edge of RI (RI going from asserted to not asserted).
  const uint8_t changed = static_cast<uint8_t>(before ^ after);
  if (changed & kMsrCts) msr_deltas_ |= kMsrDcts;
  if (changed & kMsrDsr) msr_deltas_ |= kMsrDdsr;
  if ((before & kMsrRi) && !(after & kMsrRi)) msr_deltas_ |= kMsrTeri;
  if (changed & kMsrDcd) msr_deltas_ |= kMsrDdcd;
}

uint8_t Serial::interrupt_id() const {
  // PC16550D Table IV priorities: receiver line status > received data available / character
  // timeout > THR empty > modem status. Each source counts only while its IER bit is set.
  if ((ier_ & kIerRlsi) && (lsr_errors_ & kLsrErrors)) return kIirRlsi;
  if ((ier_ & kIerRdi) && rx_count_ > 0) {
    if (!fifo_enabled()) return kIirRdi;
    static constexpr size_t kTriggerLevels[4] = {1, 4, 8, 14};  // FCR bits 7:6
    const size_t trigger = kTriggerLevels[(fcr_ & kFcrTrigger) >> 6];
    // Below the trigger level a real UART raises the character-timeout interrupt after four
    // idle character times. There is no line clock here, so the timeout counts as already
    // elapsed: the guest is told about every byte, never left waiting for more to arrive.
    // Linux handles RDI and the timeout the same way (it reads while LSR.DR is set).
    return rx_count_ >= trigger ? kIirRdi : kIirTimeout;
  }
  if ((ier_ & kIerThri) && thr_interrupt_) return kIirThri;
  if ((ier_ & kIerMsi) && (msr_deltas_ & kMsrDeltas)) return kIirMsi;
  return kIirNone;
}

uint8_t Serial::modem_inputs() const {
  if (!(mcr_ & kMcrLoop)) return kMsrIdleLines;
  // PC16550D §8.7 (loopback): "the four modem control inputs (CTS, DSR, RI and DCD) are
  // internally connected to the four modem control outputs (RTS, DTR, OUT1 and OUT2)".
  // Linux's autoconfig loop test writes MCR = LOOP | OUT2 | RTS and expects MSR & 0xf0 = 0x90.
  uint8_t lines = 0;
  if (mcr_ & kMcrRts) lines |= kMsrCts;
  if (mcr_ & kMcrDtr) lines |= kMsrDsr;
  if (mcr_ & kMcrOut1) lines |= kMsrRi;
  if (mcr_ & kMcrOut2) lines |= kMsrDcd;
  return lines;
}

bool Serial::fifo_enabled() const { return (fcr_ & kFcrEnable) != 0; }

size_t Serial::rx_capacity() const {
  // 16450 mode (FCR0 = 0): the receiver buffer register holds one character.
  return fifo_enabled() ? kFifoSize : 1;
}

void Serial::clear_rx() {
  rx_head_ = 0;
  rx_count_ = 0;
}

uint8_t Serial::pop_rx() {
  if (rx_count_ == 0) return 0;  // nothing received: RBR reads 0, as in QEMU's FIFO mode
  const uint8_t byte = rx_[rx_head_];
  rx_head_ = (rx_head_ + 1) % kFifoSize;
  --rx_count_;
  return byte;
}

bool Serial::push_rx(uint8_t byte) {
  if (rx_count_ >= rx_capacity()) return false;
  rx_[(rx_head_ + rx_count_) % kFifoSize] = byte;
  ++rx_count_;
  return true;
}

bool Serial::irq_output() const {
  // The INTR pin follows the pending interrupt; on a PC it reaches the interrupt controller
  // only while the OUT2 *pin* is active. In loopback the datasheet forces the modem-control
  // output pins inactive (PC16550D §8.7), so the interrupt is cut off there too.
  return interrupt_id() != kIirNone && (mcr_ & kMcrOut2) && !(mcr_ & kMcrLoop);
}

void Serial::update_irq() {
  const bool level = irq_output();
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_) irq_->set_level(level);
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  size_t accepted = 0;
  if (!(mcr_ & kMcrLoop)) {
    while (accepted < bytes.size() && push_rx(bytes[accepted])) ++accepted;
  }
  counters_.rx_bytes += accepted;
  counters_.rx_dropped += bytes.size() - accepted;
  update_irq();
  return accepted;
}

size_t Serial::rx_space() const {
  std::lock_guard lock(mutex_);
  if (mcr_ & kMcrLoop) return 0;
  return rx_capacity() - rx_count_;
}

Serial::Counters Serial::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

Serial::State Serial::save_state() const {
  std::lock_guard lock(mutex_);
  State s;
  s.ier = ier_;
  s.lcr = lcr_;
  s.mcr = mcr_;
  s.fcr = fcr_;
  s.lsr_errors = lsr_errors_;
  s.msr_deltas = msr_deltas_;
  s.scr = scr_;
  s.dll = dll_;
  s.dlm = dlm_;
  s.thr_interrupt = thr_interrupt_;
  s.rx_fifo.reserve(rx_count_);
  for (size_t i = 0; i < rx_count_; ++i) s.rx_fifo.push_back(rx_[(rx_head_ + i) % kFifoSize]);
  return s;
}

void Serial::validate(const State& state) {
  auto reject = [](const std::string& what) {
    throw LegacyDeviceError("serial: invalid state: " + what);
  };
  if (state.ier & ~kIerMask) reject("IER " + hex8(state.ier) + " has bits above 3");
  if (state.mcr & ~kMcrMask) reject("MCR " + hex8(state.mcr) + " has bits above 4");
  if (state.fcr & ~kFcrSticky) reject("FCR " + hex8(state.fcr) + " has self-clearing bits");
  if (!(state.fcr & kFcrEnable) && state.fcr != 0) {
    reject("FCR " + hex8(state.fcr) + " programs bits with FIFOs disabled");
  }
  if (state.lsr_errors & ~kLsrErrors) reject("LSR errors " + hex8(state.lsr_errors));
  if (state.msr_deltas & ~kMsrDeltas) reject("MSR deltas " + hex8(state.msr_deltas));
  const size_t capacity = (state.fcr & kFcrEnable) ? kFifoSize : 1;
  if (state.rx_fifo.size() > capacity) {
    reject("RX FIFO holds " + std::to_string(state.rx_fifo.size()) + " bytes, more than " +
           std::to_string(capacity));
  }
}

void Serial::restore_state(const State& state) {
  // Validate everything before touching the device, so a bad state leaves it as it was.
  validate(state);
  std::lock_guard lock(mutex_);
  ier_ = state.ier;
  lcr_ = state.lcr;
  mcr_ = state.mcr;
  fcr_ = state.fcr;
  lsr_errors_ = state.lsr_errors;
  msr_deltas_ = state.msr_deltas;
  scr_ = state.scr;
  dll_ = state.dll;
  dlm_ = state.dlm;
  thr_interrupt_ = state.thr_interrupt;
  clear_rx();
  std::copy(state.rx_fifo.begin(), state.rx_fifo.end(), rx_.begin());
  rx_count_ = state.rx_fifo.size();
  // Drive the line unconditionally: whatever level it had before the restore is stale.
  irq_level_ = irq_output();
  if (irq_) irq_->set_level(irq_level_);
}

}  // namespace forkvm
