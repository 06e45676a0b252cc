#include "mem/remote.h"

#include <cstdio>

namespace aioscope {

std::string hexAddr(Addr a) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
    return buf;
}

void Remote::raiseFatal(ReadResult r, Addr addr) {
    if (r == ReadResult::gone) {
        throw InspectError(Errc::process_exited, "the process exited while it was being read");
    }
    if (r == ReadResult::denied) {
        throw InspectError(Errc::permission_denied,
                           "permission denied reading memory at " + hexAddr(addr) + ": " +
                               permissionAdvice());
    }
}

bool Remote::tryRead(Addr addr, void* dst, std::size_t len) {
    ReadResult r = m_reader.read(addr, dst, len);
    if (r == ReadResult::ok) return true;
    raiseFatal(r, addr);
    return false;
}

void Remote::read(Addr addr, void* dst, std::size_t len, const char* what) {
    if (!tryRead(addr, dst, len)) {
        throw BadRead(std::string("cannot read ") + what + " at " + hexAddr(addr));
    }
}

Block Remote::block(Addr addr, std::size_t size, const char* what) {
    Block b(size);
    read(addr, b.data(), size, what);
    return b;
}

}  // namespace aioscope
