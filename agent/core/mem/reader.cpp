#include "mem/reader.h"

namespace aioscope {

void MemoryReader::readMany(std::span<Request> requests) {
    for (auto& r : requests) r.result = read(r.addr, r.dst, r.len);
}

std::size_t MemoryReader::readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) {
    why = read(addr, dst, len);
    return why == ReadResult::ok ? len : 0;
}

}  // namespace aioscope
