// CPython's hash of a str, as the target computes it: SipHash of the
// characters keyed with the process's _Py_HashSecret (SipHash-2-4 up to
// 3.10, SipHash-1-3 since). With it a lookup in a large dict (sys.modules,
// a module's globals) follows the target's own probe sequence and reads a
// key or two, instead of every key (see objects.h, dictGet).
#pragma once

#include <cstdint>
#include <string_view>

#include "layout/layout.h"

namespace aioscope {

struct HashSecret {
    std::uint64_t k0 = 0;
    std::uint64_t k1 = 0;
};

// SipHash-c-d with 64-bit output, c compression rounds and 3 finalization
// rounds as CPython's pyhash.c has them (d = 4 for 2-4, 3 for 1-3).
std::uint64_t sipHash(StrHashModel model, const HashSecret& key, std::string_view bytes);

// hash(s) for a str whose characters are `ascii` (one byte each), as
// _Py_HashBytes returns it: 0 for "", never -1.
std::int64_t strHash(StrHashModel model, const HashSecret& key, std::string_view ascii);

}  // namespace aioscope
