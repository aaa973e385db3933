#include "vmm/state/kvm_state_codec.hpp"

#include <set>

#include "base/base64.hpp"
#include "base/json_reader.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::state {
namespace {

using nlohmann::json;

// Field lists shared by the encoder and the decoder, so the two cannot drift apart.
#define FORKVM_REGS_FIELDS(X)                                                                  \
  X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9) X(r10) X(r11) X(r12)     \
  X(r13) X(r14) X(r15) X(rip) X(rflags)
#define FORKVM_SREGS_SEGMENTS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)
#define FORKVM_SREGS_U64(X) X(cr0) X(cr2) X(cr3) X(cr4) X(cr8) X(efer) X(apic_base)
#define FORKVM_PIC_BOOL(X)                                                                     \
  X(read_reg_select) X(poll) X(special_mask) X(auto_eoi) X(rotate_on_auto_eoi)                 \
  X(special_fully_nested_mode) X(init4)
#define FORKVM_PIC_BYTE(X)                                                                     \
  X(last_irr) X(irr) X(imr) X(isr) X(priority_add) X(irq_base) X(elcr) X(elcr_mask)

// KVM_MP_STATE_* values valid on x86 (Documentation/virt/kvm/api.rst, KVM_GET_MP_STATE):
// RUNNABLE 0, UNINITIALIZED 1, INIT_RECEIVED 2, HALTED 3, SIPI_RECEIVED 4, AP_RESET_HOLD 9.
bool valid_mp_state(uint32_t v) { return v <= 4 || v == 9; }

constexpr uint32_t kEventFlags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                                 KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |
                                 0x10 /* VALID_PAYLOAD */ | 0x20 /* VALID_TRIPLE_FAULT */;
constexpr uint32_t kCpuidFlags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX | KVM_CPUID_FLAG_STATEFUL_FUNC |
                                 KVM_CPUID_FLAG_STATE_READ_NEXT;
constexpr uint32_t kClockFlags = 2 /* TSC_STABLE */ | 4 /* REALTIME */ | 8 /* HOST_TSC */;
constexpr uint32_t kPitFlags = 1 /* HPET_LEGACY */ | 2 /* SPEAKER_DATA_ON */;

/// Throws unless every bit of `v` is in `mask`.
void check_mask(JsonReader& r, const char* key, uint64_t v, uint64_t mask) {
  if ((v & ~mask) != 0) r.fail(key, "undefined flag bits set");
}

// ---- vCPU ----------------------------------------------------------------------------------

json segment_json(const kvm_segment& s) {
  return {{"base", s.base}, {"limit", s.limit}, {"selector", s.selector}, {"type", s.type},
          {"present", s.present}, {"dpl", s.dpl}, {"db", s.db}, {"s", s.s}, {"l", s.l},
          {"g", s.g}, {"avl", s.avl}, {"unusable", s.unusable}};
}

kvm_segment segment_from(JsonReader r) {
  kvm_segment s{};
  s.base = r.num<uint64_t>("base");
  s.limit = r.num<uint32_t>("limit");
  s.selector = r.num<uint16_t>("selector");
  s.type = r.num<uint8_t>("type", 0, 15);
  s.present = r.flag("present");
  s.dpl = r.num<uint8_t>("dpl", 0, 3);
  s.db = r.flag("db");
  s.s = r.flag("s");
  s.l = r.flag("l");
  s.g = r.flag("g");
  s.avl = r.flag("avl");
  s.unusable = r.flag("unusable");
  r.finish();
  return s;
}

json dtable_json(const kvm_dtable& d) { return {{"base", d.base}, {"limit", d.limit}}; }

kvm_dtable dtable_from(JsonReader r) {
  kvm_dtable d{};
  d.base = r.num<uint64_t>("base");
  d.limit = r.num<uint16_t>("limit");
  r.finish();
  return d;
}

json sregs_json(const kvm_sregs& s) {
  json j;
#define X(f) j[#f] = segment_json(s.f);
  FORKVM_SREGS_SEGMENTS(X)
#undef X
  j["gdt"] = dtable_json(s.gdt);
  j["idt"] = dtable_json(s.idt);
#define X(f) j[#f] = s.f;
  FORKVM_SREGS_U64(X)
#undef X
  j["interrupt_bitmap"] = json::array();
  for (uint64_t w : s.interrupt_bitmap) j["interrupt_bitmap"].push_back(w);
  return j;
}

kvm_sregs sregs_from(JsonReader r) {
  kvm_sregs s{};
#define X(f) s.f = segment_from(r.object(#f));
  FORKVM_SREGS_SEGMENTS(X)
#undef X
  s.gdt = dtable_from(r.object("gdt"));
  s.idt = dtable_from(r.object("idt"));
#define X(f) s.f = r.num<uint64_t>(#f);
  FORKVM_SREGS_U64(X)
#undef X
  const json& bitmap = r.array("interrupt_bitmap", 4);
  if (bitmap.size() != 4) r.fail("interrupt_bitmap", "expected 4 words");
  for (size_t i = 0; i < 4; ++i) {
    s.interrupt_bitmap[i] =
        json_element<uint64_t>(bitmap[i], r.path("interrupt_bitmap[" + std::to_string(i) + "]"));
  }
  r.finish();
  return s;
}

json events_json(const kvm_vcpu_events& e) {
  return {
      {"exception",
       {{"injected", e.exception.injected}, {"nr", e.exception.nr},
        {"has_error_code", e.exception.has_error_code}, {"pending", e.exception.pending},
        {"error_code", e.exception.error_code}}},
      {"interrupt",
       {{"injected", e.interrupt.injected}, {"nr", e.interrupt.nr}, {"soft", e.interrupt.soft},
        {"shadow", e.interrupt.shadow}}},
      {"nmi", {{"injected", e.nmi.injected}, {"pending", e.nmi.pending}, {"masked", e.nmi.masked}}},
      {"sipi_vector", e.sipi_vector},
      {"flags", e.flags},
      {"smi",
       {{"smm", e.smi.smm}, {"pending", e.smi.pending}, {"smm_inside_nmi", e.smi.smm_inside_nmi},
        {"latched_init", e.smi.latched_init}}},
      {"triple_fault_pending", e.triple_fault.pending},
      {"exception_has_payload", e.exception_has_payload},
      {"exception_payload", e.exception_payload},
  };
}

kvm_vcpu_events events_from(JsonReader r) {
  kvm_vcpu_events e{};
  {
    JsonReader x = r.object("exception");
    e.exception.injected = x.flag("injected");
    e.exception.nr = x.num<uint8_t>("nr", 0, 31);  // exceptions are vectors 0-31
    e.exception.has_error_code = x.flag("has_error_code");
    e.exception.pending = x.flag("pending");
    e.exception.error_code = x.num<uint32_t>("error_code");
    x.finish();
  }
  {
    JsonReader x = r.object("interrupt");
    e.interrupt.injected = x.flag("injected");
    e.interrupt.nr = x.num<uint8_t>("nr");
    e.interrupt.soft = x.flag("soft");
    e.interrupt.shadow = x.num<uint8_t>("shadow", 0, 3);  // KVM_X86_SHADOW_INT_MOV_SS | _STI
    x.finish();
  }
  {
    JsonReader x = r.object("nmi");
    e.nmi.injected = x.flag("injected");
    e.nmi.pending = x.flag("pending");
    e.nmi.masked = x.flag("masked");
    x.finish();
  }
  e.sipi_vector = r.num<uint32_t>("sipi_vector", 0, 255);
  e.flags = r.num<uint32_t>("flags");
  check_mask(r, "flags", e.flags, kEventFlags);
  {
    JsonReader x = r.object("smi");
    e.smi.smm = x.flag("smm");
    e.smi.pending = x.flag("pending");
    e.smi.smm_inside_nmi = x.flag("smm_inside_nmi");
    e.smi.latched_init = x.flag("latched_init");
    x.finish();
  }
  e.triple_fault.pending = r.flag("triple_fault_pending");
  e.exception_has_payload = r.flag("exception_has_payload");
  e.exception_payload = r.num<uint64_t>("exception_payload");
  r.finish();
  return e;
}

}  // namespace

json to_json(const VcpuState& s) {
  json j;
  j["tsc_khz"] = s.tsc_khz;
  json cpuid = json::array();
  for (const auto& e : s.cpuid) {
    cpuid.push_back({{"function", e.function}, {"index", e.index}, {"flags", e.flags},
                     {"eax", e.eax}, {"ebx", e.ebx}, {"ecx", e.ecx}, {"edx", e.edx}});
  }
  j["cpuid"] = std::move(cpuid);
  j["mp_state"] = s.mp_state.mp_state;
  json regs;
#define X(f) regs[#f] = s.regs.f;
  FORKVM_REGS_FIELDS(X)
#undef X
  j["regs"] = std::move(regs);
  j["sregs"] = sregs_json(s.sregs);
  j["xsave"] = to_base64(s.xsave);
  json xcrs = json::array();
  for (uint32_t i = 0; i < s.xcrs.nr_xcrs && i < KVM_MAX_XCRS; ++i) {
    xcrs.push_back({{"xcr", s.xcrs.xcrs[i].xcr}, {"value", s.xcrs.xcrs[i].value}});
  }
  j["xcrs"] = std::move(xcrs);
  j["debugregs"] = {{"db", {s.debugregs.db[0], s.debugregs.db[1], s.debugregs.db[2],
                            s.debugregs.db[3]}},
                    {"dr6", s.debugregs.dr6},
                    {"dr7", s.debugregs.dr7},
                    {"flags", s.debugregs.flags}};
  j["lapic"] = to_base64(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(s.lapic.regs), sizeof s.lapic.regs));
  json msrs = json::array();
  for (const auto& m : s.msrs) msrs.push_back({{"index", m.index}, {"data", m.data}});
  j["msrs"] = std::move(msrs);
  j["events"] = events_json(s.events);
  return j;
}

VcpuState vcpu_state_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  VcpuState s;
  s.tsc_khz = r.num<uint32_t>("tsc_khz");

  const json& cpuid = r.array("cpuid", kMaxCpuidEntries);
  // Repeated (function, index) pairs are not rejected: KVM's own lists contain them (seen in
  // KVM_GET_CPUID2 on an AMD host) and KVM_SET_CPUID2 accepts them.
  for (size_t i = 0; i < cpuid.size(); ++i) {
    JsonReader e(cpuid[i], r.path("cpuid[" + std::to_string(i) + "]"));
    kvm_cpuid_entry2 x{};
    x.function = e.num<uint32_t>("function");
    x.index = e.num<uint32_t>("index");
    x.flags = e.num<uint32_t>("flags");
    check_mask(e, "flags", x.flags, kCpuidFlags);
    x.eax = e.num<uint32_t>("eax");
    x.ebx = e.num<uint32_t>("ebx");
    x.ecx = e.num<uint32_t>("ecx");
    x.edx = e.num<uint32_t>("edx");
    e.finish();
    s.cpuid.push_back(x);
  }

  s.mp_state.mp_state = r.num<uint32_t>("mp_state");
  if (!valid_mp_state(s.mp_state.mp_state)) r.fail("mp_state", "not an x86 KVM_MP_STATE value");

  {
    JsonReader x = r.object("regs");
#define X(f) s.regs.f = x.num<uint64_t>(#f);
    FORKVM_REGS_FIELDS(X)
#undef X
    x.finish();
  }
  s.sregs = sregs_from(r.object("sregs"));

  s.xsave = r.blob("xsave", kXsaveLegacySize, kXsaveMaxSize);
  if (s.xsave.size() % 64 != 0) r.fail("xsave", "size is not a multiple of 64 bytes");

  const json& xcrs = r.array("xcrs", KVM_MAX_XCRS);
  s.xcrs.nr_xcrs = static_cast<uint32_t>(xcrs.size());
  for (size_t i = 0; i < xcrs.size(); ++i) {
    JsonReader e(xcrs[i], r.path("xcrs[" + std::to_string(i) + "]"));
    s.xcrs.xcrs[i].xcr = e.num<uint32_t>("xcr");
    s.xcrs.xcrs[i].value = e.num<uint64_t>("value");
    e.finish();
  }

  {
    JsonReader x = r.object("debugregs");
    const json& db = x.array("db", 4);
    if (db.size() != 4) x.fail("db", "expected 4 registers");
    for (size_t i = 0; i < 4; ++i) {
      s.debugregs.db[i] = json_element<uint64_t>(db[i], x.path("db[" + std::to_string(i) + "]"));
    }
    s.debugregs.dr6 = x.num<uint64_t>("dr6");
    s.debugregs.dr7 = x.num<uint64_t>("dr7");
    s.debugregs.flags = x.num<uint64_t>("flags", 0, 0);  // KVM defines none
    x.finish();
  }

  const auto lapic = r.blob("lapic", sizeof s.lapic.regs, sizeof s.lapic.regs);
  std::memcpy(s.lapic.regs, lapic.data(), sizeof s.lapic.regs);

  const json& msrs = r.array("msrs", kMaxMsrs);
  std::set<uint32_t> seen;
  for (size_t i = 0; i < msrs.size(); ++i) {
    JsonReader e(msrs[i], r.path("msrs[" + std::to_string(i) + "]"));
    kvm_msr_entry m{};
    m.index = e.num<uint32_t>("index");
    m.data = e.num<uint64_t>("data");
    e.finish();
    if (!seen.insert(m.index).second) e.fail("index", "duplicate MSR " + std::to_string(m.index));
    s.msrs.push_back(m);
  }

  s.events = events_from(r.object("events"));
  r.finish();
  return s;
}

// ---- VM --------------------------------------------------------------------------------------

namespace {

json pic_json(const kvm_pic_state& p) {
  json j;
#define X(f) j[#f] = p.f;
  FORKVM_PIC_BYTE(X)
  FORKVM_PIC_BOOL(X)
#undef X
  j["init_state"] = p.init_state;
  return j;
}

kvm_pic_state pic_from(JsonReader r) {
  kvm_pic_state p{};
#define X(f) p.f = r.num<uint8_t>(#f);
  FORKVM_PIC_BYTE(X)
#undef X
#define X(f) p.f = r.flag(#f);
  FORKVM_PIC_BOOL(X)
#undef X
  p.init_state = r.num<uint8_t>("init_state", 0, 3);  // ICW2..ICW4 sequence position
  r.finish();
  return p;
}

json channel_json(const kvm_pit_channel_state& c) {
  return {{"count", c.count}, {"latched_count", c.latched_count},
          {"count_latched", c.count_latched}, {"status_latched", c.status_latched},
          {"status", c.status}, {"read_state", c.read_state}, {"write_state", c.write_state},
          {"write_latch", c.write_latch}, {"rw_mode", c.rw_mode}, {"mode", c.mode},
          {"bcd", c.bcd}, {"gate", c.gate}, {"count_load_time", c.count_load_time}};
}

kvm_pit_channel_state channel_from(JsonReader r) {
  // Ranges from the i8254 and KVM's model of it (arch/x86/kvm/i8254.c): counts are 16-bit with 0
  // meaning 0x10000, access modes 1-3 (0 = latch), read/write states RW_STATE_LSB..WORD1 (1-4),
  // counter modes 0-5 (255 = never programmed).
  kvm_pit_channel_state c{};
  c.count = r.num<uint32_t>("count", 0, 0x10000);
  c.latched_count = r.num<uint16_t>("latched_count");
  c.count_latched = r.num<uint8_t>("count_latched", 0, 3);
  c.status_latched = r.flag("status_latched");
  c.status = r.num<uint8_t>("status");
  c.read_state = r.num<uint8_t>("read_state", 0, 4);
  c.write_state = r.num<uint8_t>("write_state", 0, 4);
  c.write_latch = r.num<uint8_t>("write_latch");
  c.rw_mode = r.num<uint8_t>("rw_mode", 0, 3);
  c.mode = r.num<uint8_t>("mode");
  // 0xff: a channel the guest never programmed (kvm_pit_reset sets it).
  if (c.mode > 5 && c.mode != 0xff) r.fail("mode", "not an i8254 counter mode (0-5, or 255 when unset)");
  c.bcd = r.flag("bcd");
  c.gate = r.flag("gate");
  c.count_load_time = r.num<int64_t>("count_load_time");
  r.finish();
  return c;
}

}  // namespace

json to_json(const VmKernelState& s) {
  json ioapic = {{"base_address", s.ioapic.base_address}, {"ioregsel", s.ioapic.ioregsel},
                 {"id", s.ioapic.id}, {"irr", s.ioapic.irr}};
  json redir = json::array();
  for (const auto& e : s.ioapic.redirtbl) redir.push_back(e.bits);
  ioapic["redirtbl"] = std::move(redir);
  json channels = json::array();
  for (const auto& c : s.pit.channels) channels.push_back(channel_json(c));
  return {{"pic_master", pic_json(s.pic_master)},
          {"pic_slave", pic_json(s.pic_slave)},
          {"ioapic", std::move(ioapic)},
          {"pit", {{"channels", std::move(channels)}, {"flags", s.pit.flags}}},
          {"clock",
           {{"clock", s.clock.clock}, {"flags", s.clock.flags}, {"realtime", s.clock.realtime},
            {"host_tsc", s.clock.host_tsc}}}};
}

VmKernelState vm_state_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  VmKernelState s;
  s.pic_master = pic_from(r.object("pic_master"));
  s.pic_slave = pic_from(r.object("pic_slave"));
  {
    JsonReader x = r.object("ioapic");
    s.ioapic.base_address = x.num<uint64_t>("base_address");
    s.ioapic.ioregsel = x.num<uint32_t>("ioregsel");
    s.ioapic.id = x.num<uint32_t>("id");
    s.ioapic.irr = x.num<uint32_t>("irr");
    const json& redir = x.array("redirtbl", KVM_IOAPIC_NUM_PINS);
    if (redir.size() != KVM_IOAPIC_NUM_PINS) {
      x.fail("redirtbl", "expected " + std::to_string(KVM_IOAPIC_NUM_PINS) + " entries");
    }
    for (size_t i = 0; i < redir.size(); ++i) {
      s.ioapic.redirtbl[i].bits =
          json_element<uint64_t>(redir[i], x.path("redirtbl[" + std::to_string(i) + "]"));
    }
    x.finish();
  }
  {
    JsonReader x = r.object("pit");
    const json& channels = x.array("channels", 3);
    if (channels.size() != 3) x.fail("channels", "expected 3 channels");
    for (size_t i = 0; i < 3; ++i) {
      s.pit.channels[i] =
          channel_from(JsonReader(channels[i], x.path("channels[" + std::to_string(i) + "]")));
    }
    s.pit.flags = x.num<uint32_t>("flags");
    check_mask(x, "flags", s.pit.flags, kPitFlags);
    x.finish();
  }
  {
    JsonReader x = r.object("clock");
    s.clock.clock = x.num<uint64_t>("clock");
    s.clock.flags = x.num<uint32_t>("flags");
    check_mask(x, "flags", s.clock.flags, kClockFlags);
    s.clock.realtime = x.num<uint64_t>("realtime");
    s.clock.host_tsc = x.num<uint64_t>("host_tsc");
    x.finish();
  }
  r.finish();
  return s;
}

json to_json(const MachineState& s) {
  json vcpus = json::array();
  for (const auto& v : s.vcpus) vcpus.push_back(to_json(v));
  return {{"vcpus", std::move(vcpus)}, {"vm", to_json(s.vm)}};
}

MachineState machine_state_from_json(const json& j, size_t max_vcpus) {
  JsonReader r(j, "machine");
  MachineState m;
  const json& vcpus = r.array("vcpus", max_vcpus);
  if (vcpus.empty()) r.fail("vcpus", "no vCPUs");
  m.vcpus.reserve(vcpus.size());
  for (size_t i = 0; i < vcpus.size(); ++i) {
    m.vcpus.push_back(vcpu_state_from_json(vcpus[i], "vcpu[" + std::to_string(i) + "]"));
  }
  m.vm = vm_state_from_json(r.member("vm"), "vm");
  r.finish();
  return m;
}

}  // namespace forkvm::state
