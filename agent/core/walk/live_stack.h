// How much of a frame's value stack is certainly live, for a frame that is
// running (a thread's frames): such frames save no stack pointer while they
// run or call into C, and the slots above the real top keep stale pointers.
// What is below the innermost handler survives any exception there, so it is
// live: 3.11+ name that depth in the code's exception table for the
// instruction the frame is at; 3.10 keeps a block stack in the frame object.
// `with` blocks keep their __exit__ below that depth until they end.
#pragma once

#include <unordered_map>
#include <vector>

#include "walk/frames.h"

namespace aioscope {

class LiveStack {
public:
    explicit LiveStack(Objects& objects) : m_objects(objects) {}

    // The live slots at the bottom of the frame's value stack (tagged
    // values as stored); empty when nothing is known to be live.
    std::vector<Addr> slots(const RawFrame& frame);

private:
    struct Entry {
        std::int64_t start, end;  // code units
        std::int64_t depth;
    };
    const std::vector<Entry>& table(Addr code);

    Objects& m_objects;
    std::unordered_map<Addr, std::vector<Entry>> m_tables;
};

}  // namespace aioscope
