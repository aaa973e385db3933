// A 16550A UART (TI PC16550D datasheet) for COM1: the guest's console. It is a register-level
// model of the parts Linux's 8250 driver uses: the divisor latch, IER/IIR with the datasheet's
// interrupt priorities, the FIFO control register, LCR, MCR with loopback mode, LSR, MSR and the
// scratch register. Transmission is instantaneous: every byte written to THR goes straight to an
// output sink, so THR and the transmitter are always empty. Received bytes come from the host via
// enqueue_input() into a 64-byte RX FIFO (a 16550A has 16 bytes; 64 is what Firecracker's UART
// buffers, and the guest cannot tell the difference).
//
// The interrupt output is gated by MCR.OUT2, as on every PC: the UART's INTR pin reaches the
// interrupt controller through a buffer enabled by the OUT2 pin, and Linux's 8250 driver sets
// OUT2 only once it has an interrupt handler ("Most PC uarts need OUT2 raised to enable
// interrupts", drivers/tty/serial/8250/8250_port.c).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "devices/bus.hpp"
#include "devices/irq_line.hpp"

namespace forkvm {

/// A 16550A UART at 8 consecutive ports (offsets 0-7), e.g. COM1 at 0x3f8 on IRQ 4.
///
/// Thread safety: every method may be called from any thread. Register state is guarded by one
/// mutex. The IrqLine is driven while that mutex is held, so that level changes from concurrent
/// vCPUs reach it in the order they happened (IrqLine::set_level is thread-safe, non-blocking in
/// spirit, and must not call back into this device). The output sink is called without that
/// mutex, under a second mutex of its own, so a slow sink never stalls a vCPU that only reads LSR,
/// and the sink itself is never called concurrently.
class Serial final : public BusDevice {
 public:
  /// Receives every byte the guest transmits, in order, usually one byte per call. May block
  /// (it runs on the vCPU thread that wrote THR); must not call back into this Serial's write().
  using OutputSink = std::function<void(std::span<const uint8_t>)>;

  /// Number of port addresses the UART decodes.
  static constexpr uint64_t kRegisterCount = 8;
  /// Capacity of the receive FIFO while FIFOs are enabled (FCR bit 0 set).
  static constexpr size_t kFifoSize = 64;

  /// Snapshot state: every register that is not derived from others, plus the RX FIFO contents
  /// (oldest byte first). LSR.DR/THRE/TEMT, IIR and the MSR line bits are derived on load.
  struct State {
    uint8_t ier = 0;          ///< Interrupt Enable Register, bits 0-3.
    uint8_t lcr = 0;          ///< Line Control Register (bit 7 = DLAB).
    uint8_t mcr = 0;          ///< Modem Control Register, bits 0-4.
    uint8_t fcr = 0;          ///< FIFO Control bits that stick: 0 (enable), 3 (DMA), 6-7 (trigger).
    uint8_t lsr_errors = 0;   ///< Sticky LSR error bits: OE, PE, FE, BI (mask 0x1e).
    uint8_t msr_deltas = 0;   ///< MSR delta bits DCTS, DDSR, TERI, DDCD (mask 0x0f).
    uint8_t scr = 0;          ///< Scratch register.
    uint8_t dll = 0x0c;       ///< Divisor latch, low byte (0x000c = 9600 baud).
    uint8_t dlm = 0;          ///< Divisor latch, high byte.
    bool thr_interrupt = false;  ///< A THR-empty interrupt is pending (until IIR read / IER edge).
    std::vector<uint8_t> rx_fifo;  ///< Received bytes not yet read by the guest.

    /// Field-by-field equality (used by save → restore → save tests).
    bool operator==(const State&) const = default;
  };

  /// Running totals, for metrics.
  struct Counters {
    uint64_t tx_bytes = 0;        ///< Bytes handed to the output sink.
    uint64_t rx_bytes = 0;        ///< Bytes accepted into the RX FIFO from the host.
    uint64_t rx_dropped = 0;      ///< Bytes lost to a full RX FIFO: refused by enqueue_input()
                                  ///< or overrun by a loopback transmission.
    uint64_t ignored_accesses = 0;  ///< Bytes of accesses outside offsets 0-7 (never expected).
  };

  /// Creates a UART in the datasheet's reset state (PC16550D Table "UART Reset Configuration":
  /// IER, FCR, LCR, MCR = 0; LSR = THRE | TEMT). `irq` may be null (no interrupt wired); `sink`
  /// may be empty (output discarded, still counted).
  Serial(std::shared_ptr<IrqLine> irq, OutputSink sink);

  /// BusDevice: reads register `offset` (0-7). A wider access is treated as the ISA bus does
  /// with an 8-bit device: one byte access per byte, at consecutive offsets.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  /// BusDevice: writes register `offset` (0-7), byte by byte as for read().
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  /// Queues host input for the guest. Returns how many leading bytes of `bytes` fit; the rest
  /// are refused (and counted in rx_dropped) so the caller may retry them later. Accepts nothing
  /// in loopback mode, where the receiver is disconnected from the serial input (PC16550D,
  /// "Loopback"). With FIFOs disabled the receiver holds a single byte.
  size_t enqueue_input(std::span<const uint8_t> bytes);
  /// How many bytes enqueue_input() would accept right now.
  size_t rx_space() const;

  /// A copy of the counters.
  Counters counters() const;

  /// Captures the register state and the RX FIFO.
  State save_state() const;
  /// Replaces the register state with `state` and re-drives the interrupt line to match. Throws
  /// LegacyDeviceError, leaving the device unchanged, when validate() refuses `state`.
  void restore_state(const State& state);
  /// Checks a State from a snapshot without a device: throws LegacyDeviceError (a SnapshotError)
  /// when it has bits the hardware lacks (IER 4-7, MCR 5-7, FCR's self-clearing bits, FCR bits
  /// with FIFOs disabled, LSR/MSR bits outside the error/delta masks) or a FIFO longer than the
  /// receiver holds (64 bytes, or 1 with FIFOs disabled).
  static void validate(const State& state);

 private:
  uint8_t read_register(uint64_t offset);
  /// Handles one byte written to `offset`; returns true when it is a byte for the sink.
  bool write_register(uint64_t offset, uint8_t value);
  void write_ier(uint8_t value);
  void write_fcr(uint8_t value);
  void write_mcr(uint8_t value);
  /// Lower nibble of IIR: the highest-priority pending, enabled interrupt (PC16550D Table IV).
  uint8_t interrupt_id() const;
  /// The MSR line bits (CTS, DSR, RI, DCD) as the UART sees them now.
  uint8_t modem_inputs() const;
  size_t rx_capacity() const;
  bool fifo_enabled() const;
  void clear_rx();
  uint8_t pop_rx();
  bool push_rx(uint8_t byte);
  /// The level the interrupt output should have now (pending interrupt, gated by OUT2).
  bool irq_output() const;
  /// Recomputes the interrupt output and tells the IrqLine when it changes. Mutex held.
  void update_irq();

  mutable std::mutex mutex_;
  std::shared_ptr<IrqLine> irq_;
  bool irq_level_ = false;

  std::mutex sink_mutex_;  // serializes calls to sink_; never taken together with mutex_
  OutputSink sink_;

  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t fcr_ = 0;
  uint8_t lsr_errors_ = 0;
  uint8_t msr_deltas_ = 0;
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;
  uint8_t dlm_ = 0;
  bool thr_interrupt_ = false;
  std::array<uint8_t, kFifoSize> rx_{};
  size_t rx_head_ = 0;   // index of the oldest byte
  size_t rx_count_ = 0;  // bytes held
  Counters counters_;
};

}  // namespace forkvm
