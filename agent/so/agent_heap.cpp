// The agent's C++ allocations: its own code's and those of the libstdc++
// linked into it (agent.map keeps these definitions local to the agent, so
// the program's allocations never come here).
//
// Why not plain malloc: glibc serves a request of 128 KiB or more (a
// snapshot's JSON, the vector of 10,000 tasks) with its own mapping and,
// when such a block is freed, raises the whole process's thresholds
// (M_MMAP_THRESHOLD up to 32 MiB, M_TRIM_THRESHOLD up to 64 MiB). The
// program's own allocator would then behave differently because the agent
// ran, and the free top of the agent thread's arena, no longer trimmed,
// stays resident after the detach (10-12 MB measured after snapshots of
// 10,000 tasks; malloc_trim does not release an arena's top). Large blocks
// are mapped and unmapped here instead; small ones stay with malloc, whose
// thresholds are then never touched by the agent.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

// Below glibc's default mmap threshold (128 KiB), with room for the header.
constexpr std::size_t kMapped = 64 * 1024;
constexpr std::size_t kPage = 4096;

// Just before every block: what to give back. length 0: malloc's.
struct Header {
    void* base;
    std::size_t length;
};
static_assert(sizeof(Header) == 16, "the header keeps malloc's 16-byte alignment");

std::size_t roundUp(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

void* allocate(std::size_t n, std::size_t align) noexcept {
    if (align < sizeof(Header)) align = sizeof(Header);
    // Room for the header before an aligned block: `align` bytes (>= 16).
    if (n > SIZE_MAX / 2 - align - kPage) return nullptr;
    std::size_t total = n + align;
    void* base = nullptr;
    std::size_t length = 0;
    if (total >= kMapped || align > kPage) {
        length = roundUp(total + (align > kPage ? align : 0), kPage);
        base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return nullptr;
    } else if (align == sizeof(Header)) {
        base = std::malloc(total);
    } else {
        base = std::aligned_alloc(align, roundUp(total, align));
    }
    if (!base) return nullptr;
    auto start = reinterpret_cast<std::uintptr_t>(base) + sizeof(Header);
    auto user = reinterpret_cast<void*>(roundUp(start, align));
    static_cast<Header*>(user)[-1] = Header{base, length};
    return user;
}

void release(void* p) noexcept {
    if (!p) return;
    Header h = static_cast<Header*>(p)[-1];
    if (h.length) {
        munmap(h.base, h.length);
    } else {
        std::free(h.base);
    }
}

void* allocateOrThrow(std::size_t n, std::size_t align) {
    void* p = allocate(n, align);
    if (!p) throw std::bad_alloc();
    return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocateOrThrow(n, 0); }
void* operator new[](std::size_t n) { return allocateOrThrow(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return allocateOrThrow(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocateOrThrow(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(n, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
