#include "inject/return_stub.h"

#include <cpuid.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace aioscope::cli {

namespace {

// The block, from its 64-byte aligned base B (offsets in bytes). The stub
// reads the header; the CLI reads the results at the marker.
//   header   [0, 128)   calls, their arguments, flags, offsets, results
//   uc       [136, 440) a struct ucontext for rt_sigreturn (B+128: the slot
//                       of the return address a real signal frame has)
//   xsave    [448, ...) the extended state, 64-byte aligned, then MAGIC2
//   regs     17 words   r15 ... rax, rflags, rsp (the rcx way back)
//   strings  path, symbol, config
constexpr std::size_t kDlopen = 0, kDlsym = 8, kDlerror = 16, kMode = 24, kPath = 32, kSymbol = 40, kConfig = 48,
                      kFlags = 56, kXmask = 64, kXareaOff = 72, kUcOff = 80, kRegsOff = 88;
constexpr std::size_t kHeader = 128;
constexpr std::size_t kUc = 136;
constexpr std::size_t kXarea = 448;
constexpr std::uint64_t kFlagXsave = 1, kFlagSigreturn = 2;

// The kernel's struct ucontext for x86-64 (asm/ucontext.h, asm/sigcontext.h).
struct KernelSigcontext {
    std::uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    std::uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
    std::uint16_t cs, gs, fs, ss;
    std::uint64_t err, trapno, oldmask, cr2, fpstate;
    std::uint64_t reserved[8];
};
struct KernelUcontext {
    std::uint64_t flags, link;
    std::uint64_t stackSp;
    std::int32_t stackFlags, pad;
    std::uint64_t stackSize;
    KernelSigcontext mcontext;
    std::uint64_t sigmask;
};
static_assert(sizeof(KernelSigcontext) == 256 && sizeof(KernelUcontext) == 304);
static_assert(offsetof(KernelUcontext, stackSp) == 16 && offsetof(KernelUcontext, sigmask) == 296);
static_assert(kUc + sizeof(KernelUcontext) <= kXarea && kXarea % 64 == 0);
static_assert(kStubResultsOffset == 96 && kStubResultsOffset + sizeof(StubResults) <= kHeader);

constexpr std::uint64_t kUcFpXstate = 1, kUcSigcontextSs = 2, kUcStrictRestoreSs = 4;
constexpr std::uint32_t kFpXstateMagic1 = 0x46505853, kFpXstateMagic2 = 0x46505845;
constexpr std::size_t kSwBytes = 464;  // struct _fpx_sw_bytes in the FXSAVE area's software-available bytes

// Error numbers the kernel uses to restart an interrupted system call.
constexpr long kErestartSys = 512, kErestartNoIntr = 513, kErestartNoHand = 514, kErestartRestartBlock = 516;
constexpr unsigned long long kNrRestartSyscall = 219;
constexpr unsigned long long kFlagsDf = 1ull << 10, kFlagsTf = 1ull << 8;

std::size_t align(std::size_t v, std::size_t a) { return (v + a - 1) & ~(a - 1); }

template <typename T>
void put(std::vector<std::uint8_t>& b, std::size_t at, T v) {
    std::memcpy(b.data() + at, &v, sizeof v);
}

}  // namespace

}  // namespace aioscope::cli

// The stub itself: data in aioscope (never executed here), copied into the
// target. Offsets are those of the header above.
asm(R"(
    .pushsection .rodata.aioscope_stub,"a",@progbits
    .balign 16
    .globl aioscope_stub_begin
    .hidden aioscope_stub_begin
aioscope_stub_begin:
    movq %rsp, %rbx                 # the block
    cld
    leaq -64(%rbx), %rsp            # our calls use the stack below it
    andq $-16, %rsp
    movq 72(%rbx), %rdi             # save the extended state
    addq %rbx, %rdi
    movl 64(%rbx), %eax
    movl 68(%rbx), %edx
    testq $1, 56(%rbx)
    jz 1f
    xsave64 (%rdi)
    jmp 2f
1:  fxsave64 (%rdi)
2:  movq 32(%rbx), %rdi             # dlopen(path, mode)
    movq 24(%rbx), %rsi
    xorl %eax, %eax
    callq *0(%rbx)
    movq %rax, 96(%rbx)
    testq %rax, %rax
    jnz 3f
    movq 16(%rbx), %rax             # dlerror()
    testq %rax, %rax
    jz 5f
    callq *%rax
    movq %rax, 120(%rbx)
    jmp 5f
3:  movq %rax, %rdi                 # dlsym(handle, symbol)
    movq 40(%rbx), %rsi
    callq *8(%rbx)
    movq %rax, 104(%rbx)
    testq %rax, %rax
    jz 5f
    movq 48(%rbx), %rdi             # aioscope_agent_start(config)
    callq *%rax
    movq %rax, 112(%rbx)
5:  movl $39, %eax                  # getpid: where aioscope stops us, if it still traces us
    syscall
    .globl aioscope_stub_marker
    .hidden aioscope_stub_marker
aioscope_stub_marker:
    movq 72(%rbx), %rdi             # restore the extended state
    addq %rbx, %rdi
    movl 64(%rbx), %eax
    movl 68(%rbx), %edx
    testq $1, 56(%rbx)
    jz 1f
    xrstor64 (%rdi)
    jmp 2f
1:  fxrstor64 (%rdi)
2:  testq $2, 56(%rbx)
    jnz 6f
    movq 88(%rbx), %rsp             # back from a system call: every register, rcx last
    addq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    popfq
    popq %rsp
    jmpq *%rcx
6:  movq 80(%rbx), %r12             # anywhere else: rt_sigreturn on the block's frame
    addq %rbx, %r12
    movl $131, %eax                 # sigaltstack(NULL, &uc.uc_stack)
    xorl %edi, %edi
    leaq 16(%r12), %rsi
    syscall
    movl $14, %eax                  # rt_sigprocmask(SIG_BLOCK, NULL, &uc.uc_sigmask, 8)
    xorl %edi, %edi
    xorl %esi, %esi
    leaq 296(%r12), %rdx
    movl $8, %r10d
    syscall
    movq %r12, %rsp
    movl $15, %eax                  # rt_sigreturn
    syscall
    ud2
    .globl aioscope_stub_end
    .hidden aioscope_stub_end
aioscope_stub_end:
    .popsection
)");

extern "C" {
extern const std::uint8_t aioscope_stub_begin[];
extern const std::uint8_t aioscope_stub_marker[];
extern const std::uint8_t aioscope_stub_end[];
}

namespace aioscope::cli {

const StubCode& stubCode() {
    static const StubCode code{aioscope_stub_begin, static_cast<std::size_t>(aioscope_stub_end - aioscope_stub_begin),
                               static_cast<std::size_t>(aioscope_stub_marker - aioscope_stub_begin)};
    return code;
}

XstateFormat hostXstateFormat() {
    XstateFormat f;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return f;  // no OSXSAVE: FXSAVE
    unsigned lo = 0, hi = 0;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    std::uint64_t xcr0 = (static_cast<std::uint64_t>(hi) << 32) | lo;
    f.xsave = true;
    f.mask = xcr0 & ~(1ull << 18);  // AMX tile data: enabled per process, left to the kernel
    f.size = 576;                   // legacy area and header
    for (unsigned i = 2; i < 63; ++i) {
        if (!(f.mask & (1ull << i))) continue;
        __cpuid_count(0xd, i, a, b, c, d);
        f.size = std::max<std::uint32_t>(f.size, a + b);  // size + offset in the standard format
    }
    return f;
}

std::optional<Resume> resumeFrom(const user_regs_struct& saved) {
    Resume r;
    r.regs = saved;
    if (static_cast<long long>(saved.orig_rax) < 0) return r;  // not in a system call
    // In a system call entered with `syscall`, rcx holds the address after
    // that instruction (the hardware put it there); anything else is not
    // something we can resume exactly.
    if (saved.rcx != saved.rip) return std::nullopt;
    switch (static_cast<long>(saved.rax)) {
        case -kErestartSys:
        case -kErestartNoIntr:
        case -kErestartNoHand:
            r.regs.rip -= 2;
            r.regs.rax = saved.orig_rax;
            break;
        case -kErestartRestartBlock:
            r.regs.rip -= 2;
            r.regs.rax = kNrRestartSyscall;
            break;
        default:
            break;
    }
    r.regs.rcx = r.regs.rip;
    r.throughRcx = true;
    return r;
}

StubPlan planStub(const user_regs_struct& saved, const Resume& resume, const XstateFormat& xstate,
                  const StubCall& call, std::uint64_t stubAddr) {
    const user_regs_struct& to = resume.regs;
    std::size_t xsize = xstate.xsave ? xstate.size + 4 : 512;
    std::size_t regsOff = align(kXarea + xsize, 8);
    std::size_t pathOff = regsOff + 17 * 8;
    std::size_t symbolOff = pathOff + call.path.size() + 1;
    std::size_t configOff = symbolOff + call.symbol.size() + 1;
    std::size_t total = align(configOff + call.config.size() + 1, 64);

    StubPlan plan;
    // Below the red zone (128 bytes the interrupted code may use), aligned.
    plan.blockAddr = (saved.rsp - 128 - total) & ~std::uint64_t{63};
    std::vector<std::uint8_t>& b = plan.block;
    b.assign(total, 0);
    const std::uint64_t B = plan.blockAddr;

    put(b, kDlopen, call.dlopen);
    put(b, kDlsym, call.dlsym);
    put(b, kDlerror, call.dlerror);
    put(b, kMode, call.mode);
    put(b, kPath, B + pathOff);
    put(b, kSymbol, B + symbolOff);
    put(b, kConfig, B + configOff);
    put(b, kFlags, (xstate.xsave ? kFlagXsave : 0) | (resume.throughRcx ? 0 : kFlagSigreturn));
    put(b, kXmask, xstate.xsave ? xstate.mask : 0);
    put(b, kXareaOff, std::uint64_t{kXarea});
    put(b, kUcOff, std::uint64_t{kUc});
    put(b, kRegsOff, std::uint64_t{regsOff});

    if (xstate.xsave) {
        // The software bytes and MAGIC2 a kernel signal frame has: rt_sigreturn
        // then restores the whole extended state from this area. XSAVE itself
        // writes neither (nor the header's reserved bytes, left zero).
        put(b, kXarea + kSwBytes, kFpXstateMagic1);
        put(b, kXarea + kSwBytes + 4, static_cast<std::uint32_t>(xstate.size + 4));
        put(b, kXarea + kSwBytes + 8, xstate.mask);
        put(b, kXarea + kSwBytes + 16, xstate.size);
        put(b, kXarea + xstate.size, kFpXstateMagic2);
    }

    KernelUcontext uc{};
    uc.flags = (xstate.xsave ? kUcFpXstate : 0) | kUcSigcontextSs | kUcStrictRestoreSs;
    KernelSigcontext& m = uc.mcontext;
    m.r8 = to.r8, m.r9 = to.r9, m.r10 = to.r10, m.r11 = to.r11, m.r12 = to.r12, m.r13 = to.r13;
    m.r14 = to.r14, m.r15 = to.r15, m.rdi = to.rdi, m.rsi = to.rsi, m.rbp = to.rbp, m.rbx = to.rbx;
    m.rdx = to.rdx, m.rax = to.rax, m.rcx = to.rcx, m.rsp = to.rsp, m.rip = to.rip, m.eflags = to.eflags;
    m.cs = static_cast<std::uint16_t>(to.cs);
    m.ss = static_cast<std::uint16_t>(to.ss);
    m.fpstate = B + kXarea;
    std::memcpy(b.data() + kUc, &uc, sizeof uc);  // stack and signal mask: filled in by the stub

    const std::uint64_t regs[17] = {to.r15, to.r14, to.r13, to.r12, to.r11, to.r10, to.r9, to.r8, to.rbp,
                                    to.rdi, to.rsi, to.rdx, to.rcx, to.rbx, to.rax, to.eflags, to.rsp};
    std::memcpy(b.data() + regsOff, regs, sizeof regs);
    std::memcpy(b.data() + pathOff, call.path.c_str(), call.path.size() + 1);
    std::memcpy(b.data() + symbolOff, call.symbol.c_str(), call.symbol.size() + 1);
    std::memcpy(b.data() + configOff, call.config.c_str(), call.config.size() + 1);

    plan.entry = saved;
    plan.entry.rip = stubAddr;
    plan.entry.rsp = B;
    plan.entry.rax = 0;
    plan.entry.orig_rax = static_cast<unsigned long long>(-1);  // no system call restart at the stub
    plan.entry.eflags &= ~(kFlagsDf | kFlagsTf);
    return plan;
}

}  // namespace aioscope::cli
