// Allocation failure on demand, for code that must not throw when memory
// runs out (the agent's, which runs inside the user's program): while a
// FailAllocations lives, every operator new of at least `bytes` on the
// thread that made it throws std::bad_alloc. Other threads, and smaller
// allocations, are served as usual.
#pragma once

#include <cstddef>

namespace aioscope::test {

class FailAllocations {
public:
    explicit FailAllocations(std::size_t bytes);
    ~FailAllocations();
    FailAllocations(const FailAllocations&) = delete;
    FailAllocations& operator=(const FailAllocations&) = delete;
    // How many allocations were refused so far on this thread.
    static std::size_t refused();

private:
    std::size_t m_before;
};

}  // namespace aioscope::test
