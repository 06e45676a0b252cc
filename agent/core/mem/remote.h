// Typed, checked access to the target's memory for the walkers. A fault
// (unmapped address, torn pointer) throws BadRead, which walkers turn into a
// partial result; a vanished or forbidden process throws InspectError.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "errors.h"
#include "mem/reader.h"

namespace aioscope {

// Memory read from the target did not make sense or could not be read. Normal
// on a live process (torn reads); never fatal for the whole snapshot.
class BadRead : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string hexAddr(Addr a);

// A local copy of one remote structure; field access is bounds-checked.
// Structures up to kInline bytes (frames, tasks, code objects) need no
// allocation.
class Block {
public:
    static constexpr std::size_t kInline = 256;

    Block() = default;
    explicit Block(std::size_t size) : m_size(size) {
        if (size > kInline) m_heap.resize(size);
    }

    std::uint8_t* data() { return m_size > kInline ? m_heap.data() : m_inline; }
    const std::uint8_t* data() const { return m_size > kInline ? m_heap.data() : m_inline; }
    std::size_t size() const { return m_size; }

    template <class T>
    T at(std::int64_t off) const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (off < 0 || static_cast<std::size_t>(off) + sizeof(T) > m_size) {
            throw BadRead("field offset " + std::to_string(off) + " outside a " + std::to_string(m_size) +
                          "-byte structure");
        }
        T v;
        std::memcpy(&v, data() + off, sizeof(T));
        return v;
    }
    Addr ptr(std::int64_t off) const { return at<std::uint64_t>(off); }

private:
    std::size_t m_size = 0;
    std::uint8_t m_inline[kInline];
    std::vector<std::uint8_t> m_heap;
};

class Remote {
public:
    explicit Remote(MemoryReader& reader) : m_reader(reader) {}

    MemoryReader& reader() { return m_reader; }

    // False if the range is unmapped; throws InspectError if the process is gone.
    bool tryRead(Addr addr, void* dst, std::size_t len);
    // Throws BadRead naming `what` if the range cannot be read.
    void read(Addr addr, void* dst, std::size_t len, const char* what);

    template <class T>
    T get(Addr addr, const char* what) {
        static_assert(std::is_trivially_copyable_v<T>);
        T v;
        read(addr, &v, sizeof v, what);
        return v;
    }
    Addr ptr(Addr addr, const char* what) { return get<std::uint64_t>(addr, what); }
    Block block(Addr addr, std::size_t size, const char* what);

    // Turns a gone/denied result into the fatal error it means.
    static void raiseFatal(ReadResult r, Addr addr);

private:
    MemoryReader& m_reader;
};

}  // namespace aioscope
