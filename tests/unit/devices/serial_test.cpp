// The 16550A register model, driven one byte access at a time the way Linux's 8250 driver does.
#include "devices/legacy/serial.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "devices/legacy/legacy_device_error.hpp"
#include "tests/unit/devices/recording_irq_line.hpp"

namespace forkvm {
namespace {

// Offsets and bits, spelled out as in include/uapi/linux/serial_reg.h.
constexpr uint64_t kRx = 0, kTx = 0, kDll = 0, kIer = 1, kDlm = 1, kIir = 2, kFcr = 2, kLcr = 3,
                   kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kIerRdi = 0x01, kIerThri = 0x02, kIerRlsi = 0x04, kIerMsi = 0x08;
constexpr uint8_t kIirNoInt = 0x01, kIirMsi = 0x00, kIirThri = 0x02, kIirRdi = 0x04,
                  kIirRlsi = 0x06, kIirTimeout = 0x0c, kIirFifo = 0xc0;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08,
                  kMcrLoop = 0x10;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02, kFcrTrigger14 = 0xc0;
constexpr uint8_t kLcrDlab = 0x80, kLcrWlen8 = 0x03;

class SerialTest : public ::testing::Test {
 protected:
  SerialTest()
      : irq_(std::make_shared<test::RecordingIrqLine>()),
        serial_(irq_, [this](std::span<const uint8_t> bytes) {
          out_.insert(out_.end(), bytes.begin(), bytes.end());
        }) {}

  uint8_t rd(uint64_t offset) {
    std::array<uint8_t, 1> b{0xff};
    serial_.read(offset, b);
    return b[0];
  }
  void wr(uint64_t offset, uint8_t value) {
    const std::array<uint8_t, 1> b{value};
    serial_.write(offset, b);
  }
  size_t input(const std::string& s) {
    return serial_.enqueue_input(
        std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }

  std::shared_ptr<test::RecordingIrqLine> irq_;
  std::vector<uint8_t> out_;
  Serial serial_;
};

TEST_F(SerialTest, ResetStateMatchesDatasheet) {
  EXPECT_EQ(rd(kIer), 0);
  EXPECT_EQ(rd(kIir), kIirNoInt);
  EXPECT_EQ(rd(kLcr), 0);
  EXPECT_EQ(rd(kMcr), 0);
  EXPECT_EQ(rd(kLsr), kLsrThre | kLsrTemt);
  EXPECT_EQ(rd(kMsr), 0xb0);  // CTS, DSR, DCD asserted; no deltas
  EXPECT_EQ(rd(kScr), 0);
  EXPECT_FALSE(irq_->level());
  EXPECT_TRUE(irq_->history().empty());
}

TEST_F(SerialTest, DlabSwitchesOffsetsZeroAndOneToTheDivisorLatch) {
  wr(kLcr, kLcrDlab | kLcrWlen8);
  EXPECT_EQ(rd(kDll), 0x0c);  // 9600 baud until programmed
  EXPECT_EQ(rd(kDlm), 0x00);
  wr(kDll, 0x01);  // 115200 baud
  wr(kDlm, 0x00);
  EXPECT_EQ(rd(kDll), 0x01);
  EXPECT_EQ(rd(kDlm), 0x00);
  EXPECT_TRUE(out_.empty());  // a divisor write is not a transmission
  EXPECT_EQ(rd(kIer), 0x00);  // IER untouched by the DLM write
  wr(kLcr, kLcrWlen8);
  EXPECT_EQ(rd(kLcr), kLcrWlen8);
  wr(kIer, kIerRdi);
  EXPECT_EQ(rd(kIer), kIerRdi);
  wr(kTx, 'A');
  EXPECT_EQ(out_, std::vector<uint8_t>{'A'});
  wr(kLcr, kLcrDlab);
  EXPECT_EQ(rd(kDll), 0x01);  // the latch kept its value
}

TEST_F(SerialTest, IerKeepsOnlyTheFourInterruptBits) {
  wr(kIer, 0xff);
  EXPECT_EQ(rd(kIer), 0x0f);
  wr(kMcr, 0xff);
  EXPECT_EQ(rd(kMcr), 0x1f);
}

TEST_F(SerialTest, EveryThrByteGoesToTheSinkAndIsCounted) {
  for (char c : std::string("hello\n")) wr(kTx, static_cast<uint8_t>(c));
  EXPECT_EQ(std::string(out_.begin(), out_.end()), "hello\n");
  EXPECT_EQ(serial_.counters().tx_bytes, 6u);
  EXPECT_EQ(rd(kLsr) & (kLsrThre | kLsrTemt), kLsrThre | kLsrTemt);  // always empty again
}

TEST_F(SerialTest, ThreInterruptWhenEtbeiIsSetAndClearedByReadingIir) {
  wr(kMcr, kMcrOut2);
  wr(kIer, kIerThri);
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(rd(kIir), kIirThri);
  EXPECT_FALSE(irq_->level());  // reading IIR that reported THRE cleared it
  EXPECT_EQ(rd(kIir), kIirNoInt);
  // serial8250_do_startup's THRE test: IER=0, IER=THRI must report THRE again, else Linux
  // marks the port UART_BUG_THRE and falls back to a polling timer.
  wr(kIer, 0);
  wr(kIer, kIerThri);
  EXPECT_EQ(rd(kIir), kIirThri);
  EXPECT_EQ(irq_->rising_edges(), 2u);
}

TEST_F(SerialTest, ThreIsRearmedOnlyOnTheRisingEdgeOfEtbei) {
  wr(kMcr, kMcrOut2);
  wr(kIer, kIerThri);
  EXPECT_EQ(rd(kIir), kIirThri);
  wr(kIer, kIerThri | kIerRdi);  // ETBEI stays set: no new THRE
  EXPECT_EQ(rd(kIir), kIirNoInt);
  EXPECT_FALSE(irq_->level());
}

TEST_F(SerialTest, ThreInterruptAfterEveryThrWrite) {
  wr(kMcr, kMcrOut2);
  wr(kIer, kIerThri);
  EXPECT_EQ(rd(kIir), kIirThri);
  irq_->clear_history();
  for (int i = 0; i < 3; ++i) {
    wr(kTx, 'x');
    EXPECT_TRUE(irq_->level());
    EXPECT_EQ(rd(kIir), kIirThri);
    EXPECT_FALSE(irq_->level());
  }
  EXPECT_EQ(irq_->rising_edges(), 3u);  // one edge per byte: fine for an edge-triggered IOAPIC
}

TEST_F(SerialTest, ThrePendingWhileDisabledIsNotReported) {
  wr(kMcr, kMcrOut2);
  wr(kTx, 'x');  // ETBEI clear
  EXPECT_EQ(rd(kIir), kIirNoInt);
  EXPECT_FALSE(irq_->level());
}

TEST_F(SerialTest, LinuxTxenTestSeesTheInterrupt) {
  // serial8250_do_startup: IER=THRI, then LSR and IIR; TEMT with IIR "no interrupt" would make
  // Linux enable UART_BUG_TXEN workarounds.
  wr(kLcr, kLcrWlen8);
  wr(kMcr, kMcrOut2 | kMcrDtr | kMcrRts);
  wr(kIer, kIerThri);
  const uint8_t lsr = rd(kLsr);
  const uint8_t iir = rd(kIir);
  wr(kIer, 0);
  EXPECT_TRUE(lsr & kLsrTemt);
  EXPECT_FALSE(iir & kIirNoInt);
}

TEST_F(SerialTest, LinuxAutoconfigDetectsA16550A) {
  // autoconfig(): IER existence test, then FCR=ENABLE_FIFO and IIR >> 6 == 3 means 16550A.
  wr(kIer, 0);
  EXPECT_EQ(rd(kIer) & 0x0f, 0);
  wr(kIer, 0x0f);
  EXPECT_EQ(rd(kIer) & 0x0f, 0x0f);
  wr(kIer, 0);
  wr(kLcr, 0xbf);  // UART_LCR_CONF_MODE_B, then EFR (offset 2) = 0: an FCR write here
  wr(kFcr, 0);
  wr(kLcr, 0);
  wr(kFcr, kFcrEnable);
  EXPECT_EQ(rd(kIir) >> 6, 3);
  // The loopback test (skipped for COM1-3 by UPF_SKIP_TEST, run for COM4).
  wr(kMcr, kMcrLoop | 0x0a);
  EXPECT_EQ(rd(kMsr) & 0xf0, 0x90);
  wr(kMcr, 0);
  // serial8250_do_startup's safety check.
  EXPECT_NE(rd(kLsr), 0xff);
}

TEST_F(SerialTest, RxFifoSetsDrAndRaisesReceivedDataAvailable) {
  wr(kFcr, kFcrEnable);
  wr(kMcr, kMcrOut2);
  wr(kIer, kIerRdi);
  EXPECT_EQ(rd(kLsr) & kLsrDr, 0);
  EXPECT_EQ(input("abc"), 3u);
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(rd(kLsr) & kLsrDr, kLsrDr);
  EXPECT_EQ(rd(kIir), kIirFifo | kIirRdi);
  EXPECT_EQ(rd(kRx), 'a');
  EXPECT_EQ(rd(kRx), 'b');
  EXPECT_TRUE(irq_->level());
  EXPECT_EQ(rd(kRx), 'c');
  EXPECT_EQ(rd(kLsr) & kLsrDr, 0);
  EXPECT_EQ(rd(kIir), kIirFifo | kIirNoInt);
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(rd(kRx), 0);  // empty receiver reads 0
  EXPECT_EQ(serial_.counters().rx_bytes, 3u);
}

TEST_F(SerialTest, BelowTheTriggerLevelTheTimeoutInterruptIsReported) {
  wr(kFcr, kFcrEnable | kFcrTrigger14);
  wr(kIer, kIerRdi);
  input("abc");
  EXPECT_EQ(rd(kIir), kIirFifo | kIirTimeout);
  input("defghijklmn");  // 14 bytes now
  EXPECT_EQ(rd(kIir), kIirFifo | kIirRdi);
  rd(kRx);
  EXPECT_EQ(rd(kIir), kIirFifo | kIirTimeout);
}

TEST_F(SerialTest, InputOverflowIsRefusedAndCounted) {
  wr(kFcr, kFcrEnable);
  EXPECT_EQ(serial_.rx_space(), Serial::kFifoSize);
  const std::string many(70, 'z');
  EXPECT_EQ(input(many), Serial::kFifoSize);
  EXPECT_EQ(serial_.rx_space(), 0u);
  EXPECT_EQ(input("more"), 0u);
  EXPECT_EQ(serial_.counters().rx_dropped, 6u + 4u);
  EXPECT_EQ(rd(kLsr) & kLsrOe, 0);  // host back-pressure is not a line overrun
  rd(kRx);
  EXPECT_EQ(serial_.rx_space(), 1u);
}

TEST_F(SerialTest, WithFifosDisabledTheReceiverHoldsOneByte) {
  EXPECT_EQ(serial_.rx_space(), 1u);
  EXPECT_EQ(input("ab"), 1u);
  EXPECT_EQ(rd(kIir), kIirNoInt);  // no FIFO bits, RDI not enabled
  wr(kIer, kIerRdi);
  EXPECT_EQ(rd(kIir), kIirRdi);
  EXPECT_EQ(rd(kRx), 'a');
}

TEST_F(SerialTest, FcrClearsTheReceiveFifo) {
  wr(kFcr, kFcrEnable);
  input("abc");
  wr(kFcr, kFcrEnable | kFcrClearRx);
  EXPECT_EQ(rd(kLsr) & kLsrDr, 0);
  input("abc");
  wr(kFcr, 0);  // leaving FIFO mode clears both FIFOs too
  EXPECT_EQ(rd(kLsr) & kLsrDr, 0);
  EXPECT_EQ(rd(kIir) & kIirFifo, 0);
}

TEST_F(SerialTest, InterruptPrioritiesFollowTheDatasheet) {
  // Loopback with FIFOs off: two transmitted bytes overrun the one-byte receiver, entering
  // loopback changed the modem lines, and each THR write armed THRE: all four sources pending.
  wr(kMcr, kMcrLoop);
  wr(kIer, kIerRdi | kIerThri | kIerRlsi | kIerMsi);
  wr(kTx, 'a');
  wr(kTx, 'b');
  EXPECT_EQ(rd(kIir), kIirRlsi);
  EXPECT_EQ(rd(kLsr) & (kLsrOe | kLsrDr), kLsrOe | kLsrDr);
  EXPECT_EQ(rd(kIir), kIirRdi);  // reading LSR cleared the line status interrupt
  EXPECT_EQ(rd(kRx), 'a');       // 'b' was lost to the overrun
  EXPECT_EQ(rd(kIir), kIirThri);
  EXPECT_EQ(rd(kIir), kIirMsi);  // the IIR read above cleared THRE
  EXPECT_NE(rd(kMsr) & 0x0f, 0);
  EXPECT_EQ(rd(kIir), kIirNoInt);  // reading MSR cleared the deltas
  EXPECT_EQ(serial_.counters().rx_dropped, 1u);
  EXPECT_TRUE(out_.empty());  // loopback output never reaches the line
}

TEST_F(SerialTest, LoopbackMapsModemControlToModemStatus) {
  wr(kMcr, kMcrLoop | kMcrRts | kMcrOut2);
  EXPECT_EQ(rd(kMsr) & 0xf0, 0x90);  // RTS→CTS, OUT2→DCD
  wr(kMcr, kMcrLoop | kMcrDtr | kMcrOut1);
  EXPECT_EQ(rd(kMsr), 0x60 | 0x0b);  // DTR→DSR, OUT1→RI; CTS and DCD fell, DSR rose
  wr(kMcr, kMcrLoop);                // RI falls: trailing edge
  EXPECT_EQ(rd(kMsr), 0x02 | 0x04);  // DDSR and TERI
  wr(kMcr, 0);
  EXPECT_EQ(rd(kMsr) & 0xf0, 0xb0);  // back to the idle lines
}

TEST_F(SerialTest, LoopbackEchoesAndRefusesHostInput) {
  wr(kFcr, kFcrEnable);
  wr(kMcr, kMcrLoop);
  wr(kTx, 'q');
  EXPECT_EQ(rd(kRx), 'q');
  EXPECT_EQ(input("x"), 0u);
  EXPECT_EQ(serial_.rx_space(), 0u);
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(serial_.counters().tx_bytes, 0u);
}

TEST_F(SerialTest, Out2GatesTheInterruptLine) {
  wr(kIer, kIerThri);
  EXPECT_FALSE(irq_->level());  // pending but OUT2 low
  wr(kMcr, kMcrOut2);
  EXPECT_TRUE(irq_->level());
  wr(kMcr, kMcrOut2 | kMcrLoop);  // loopback forces the OUT2 pin inactive
  EXPECT_FALSE(irq_->level());
  wr(kMcr, kMcrOut2);
  EXPECT_TRUE(irq_->level());
  wr(kMcr, 0);
  EXPECT_FALSE(irq_->level());
  EXPECT_EQ(rd(kIir), kIirThri);  // IIR is not gated, only the line
}

TEST_F(SerialTest, ScratchRegisterHoldsAnyByte) {
  for (int v = 0; v < 256; ++v) {
    wr(kScr, static_cast<uint8_t>(v));
    ASSERT_EQ(rd(kScr), v);
  }
}

TEST_F(SerialTest, WideAccessesActLikeConsecutiveByteAccesses) {
  wr(kScr, 0x5a);
  std::array<uint8_t, 4> b{0xff, 0xff, 0xff, 0xff};
  serial_.read(kLsr, b);  // LSR, MSR, SCR, then one byte past the UART
  EXPECT_EQ(b[0], kLsrThre | kLsrTemt);
  EXPECT_EQ(b[1], 0xb0);
  EXPECT_EQ(b[2], 0x5a);
  EXPECT_EQ(b[3], 0xff);  // untouched
  const std::array<uint8_t, 2> w{'h', 'i'};
  serial_.write(kTx, w);  // THR 'h', then IER = 'i' & 0x0f
  EXPECT_EQ(out_, std::vector<uint8_t>{'h'});
  EXPECT_EQ(rd(kIer), 'i' & 0x0f);
  std::array<uint8_t, 2> far{0xff, 0xff};
  serial_.read(100, far);
  serial_.write(UINT64_MAX, far);
  serial_.read(0, std::span<uint8_t>());
  EXPECT_EQ(far[0], 0xff);
  EXPECT_EQ(serial_.counters().ignored_accesses, 1u + 2u + 2u);
}

TEST_F(SerialTest, SaveRestoreRoundTrip) {
  wr(kLcr, kLcrDlab);
  wr(kDll, 0x01);
  wr(kLcr, kLcrWlen8);
  wr(kFcr, kFcrEnable | kFcrTrigger14);
  wr(kMcr, kMcrOut2 | kMcrDtr);
  wr(kIer, kIerRdi | kIerThri);
  wr(kScr, 0x42);
  input("snapshot");
  const Serial::State saved = serial_.save_state();
  EXPECT_EQ(saved.rx_fifo, std::vector<uint8_t>({'s', 'n', 'a', 'p', 's', 'h', 'o', 't'}));
  EXPECT_TRUE(saved.thr_interrupt);

  auto irq = std::make_shared<test::RecordingIrqLine>();
  Serial restored(irq, {});
  restored.restore_state(saved);
  EXPECT_EQ(restored.save_state(), saved);
  EXPECT_TRUE(irq->level());  // restore re-drives the line
  std::array<uint8_t, 1> b{};
  restored.read(kRx, b);
  EXPECT_EQ(b[0], 's');
}

TEST_F(SerialTest, RestoreRejectsInvalidStateAndKeepsTheOldOne) {
  input("a");
  const Serial::State before = serial_.save_state();
  Serial::State bad;
  bad.fcr = kFcrEnable;
  bad.rx_fifo.assign(Serial::kFifoSize + 1, 'x');
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  bad = {};
  bad.rx_fifo = {'a', 'b'};  // FIFOs disabled: one byte at most
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  bad = {};
  bad.ier = 0x10;
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  bad = {};
  bad.mcr = 0x20;
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  bad = {};
  bad.fcr = 0x03;  // self-clearing bit
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  bad = {};
  bad.lsr_errors = kLsrDr;
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  bad = {};
  bad.msr_deltas = 0x10;
  EXPECT_THROW(serial_.restore_state(bad), LegacyDeviceError);
  EXPECT_EQ(serial_.save_state(), before);
}

TEST(Serial, WorksWithoutIrqLineOrSink) {
  Serial serial(nullptr, {});
  const std::array<uint8_t, 1> b{kMcrOut2};
  serial.write(kMcr, b);
  const std::array<uint8_t, 1> ier{kIerThri};
  serial.write(kIer, ier);
  serial.write(kTx, ier);
  EXPECT_EQ(serial.counters().tx_bytes, 1u);
}

TEST(Serial, AThrowingSinkDoesNotEscape) {
  Serial serial(nullptr, [](std::span<const uint8_t>) { throw std::runtime_error("disk full"); });
  const std::array<uint8_t, 1> b{'x'};
  EXPECT_NO_THROW(serial.write(kTx, b));
  EXPECT_EQ(serial.counters().tx_bytes, 1u);
}

TEST(Serial, ConcurrentWritersAndHostInputKeepCountsExact) {
  std::atomic<size_t> sunk{0};
  auto irq = std::make_shared<test::RecordingIrqLine>();
  Serial serial(irq, [&](std::span<const uint8_t> bytes) { sunk += bytes.size(); });
  const std::array<uint8_t, 1> fifo{kFcrEnable};
  serial.write(kFcr, fifo);
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      const std::array<uint8_t, 1> c{'x'};
      std::array<uint8_t, 1> lsr{};
      for (int i = 0; i < kPerThread; ++i) {
        serial.write(kTx, c);
        serial.read(kLsr, lsr);
      }
    });
  }
  threads.emplace_back([&] {
    const std::array<uint8_t, 4> in{'a', 'b', 'c', 'd'};
    std::array<uint8_t, 1> rx{};
    for (int i = 0; i < kPerThread; ++i) {
      serial.enqueue_input(in);
      serial.read(kRx, rx);
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(sunk.load(), 3u * kPerThread);
  const Serial::Counters c = serial.counters();
  EXPECT_EQ(c.tx_bytes, 3u * kPerThread);
  EXPECT_EQ(c.rx_bytes + c.rx_dropped, 4u * kPerThread);
}

}  // namespace
}  // namespace forkvm
