#include "mem/reader.h"

namespace aioscope {

void MemoryReader::readMany(std::span<Request> requests) {
    for (auto& r : requests) r.result = read(r.addr, r.dst, r.len);
}

}  // namespace aioscope
