#include "failing_alloc.h"

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t t_failFrom = 0;  // 0: never
thread_local std::size_t t_refused = 0;
}  // namespace

namespace aioscope::test {

FailAllocations::FailAllocations(std::size_t bytes) : m_before(t_failFrom) { t_failFrom = bytes; }
FailAllocations::~FailAllocations() { t_failFrom = m_before; }
std::size_t FailAllocations::refused() { return t_refused; }

}  // namespace aioscope::test

// The whole test binary's operator new (the array and nothrow forms call
// this one; delete stays the library's, which frees what malloc gave).
void* operator new(std::size_t n) {
    if (t_failFrom != 0 && n >= t_failFrom) {
        ++t_refused;
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
