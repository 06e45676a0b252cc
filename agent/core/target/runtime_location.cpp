#include "target/runtime_location.h"

namespace aioscope {

PythonVersion PythonVersion::fromHex(std::uint64_t hex) {
    PythonVersion v;
    v.hex = hex;
    v.major = static_cast<int>((hex >> 24) & 0xff);
    v.minor = static_cast<int>((hex >> 16) & 0xff);
    v.micro = static_cast<int>((hex >> 8) & 0xff);
    return v;
}

std::string PythonVersion::str() const {
    // Appended piece by piece: GCC 12 -O3 warns (-Wrestrict, a false positive,
    // GCC bug 105329) on `"." + std::to_string(...)`.
    std::string s = std::to_string(major);
    s += '.';
    s += std::to_string(minor);
    if (micro >= 0) {
        s += '.';
        s += std::to_string(micro);
    }
    return s;
}

}  // namespace aioscope
