// Reads a fuzzer's input as a stream of little-endian numbers and byte
// strings; past its end every read gives zeros (or an empty string).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace aioscope::fuzz {

class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : m_data(data), m_size(size) {}

    bool empty() const { return m_pos >= m_size; }
    std::uint8_t u8() { return num<std::uint8_t>(); }
    std::uint16_t u16() { return num<std::uint16_t>(); }
    std::uint32_t u32() { return num<std::uint32_t>(); }
    std::uint64_t u64() { return num<std::uint64_t>(); }
    std::vector<std::uint8_t> bytes(std::size_t n) {
        n = std::min(n, m_size - std::min(m_pos, m_size));
        std::vector<std::uint8_t> out(m_data + m_pos, m_data + m_pos + n);
        m_pos += n;
        return out;
    }
    // The rest of the input.
    std::string rest() {
        auto b = bytes(m_size);
        return std::string(b.begin(), b.end());
    }

private:
    template <class T>
    T num() {
        T v{};
        auto b = bytes(sizeof v);
        if (!b.empty()) std::memcpy(&v, b.data(), b.size());
        return v;
    }
    const std::uint8_t* m_data;
    std::size_t m_size;
    std::size_t m_pos = 0;
};

}  // namespace aioscope::fuzz
