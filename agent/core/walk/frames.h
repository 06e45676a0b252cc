// Walks a chain of Python frames (PyFrameObject on 3.10, _PyInterpreterFrame
// on 3.11+) and turns each into a Frame, skipping the C entry frames and shim
// frames the interpreter pushes for itself (they never appear in tracebacks).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/snapshot.h"
#include "remote/limits.h"
#include "walk/code.h"

namespace aioscope {

// One frame as read from memory, before deciding whether to show it.
struct RawFrame {
    Addr addr = 0;
    Addr previous = 0;
    Addr code = 0;
    std::int64_t lasti = -1;  // code units; -1 before the first instruction
    Addr instr = 0;           // address of the current/last code unit
    Addr gen = 0;             // the generator/coroutine owning this frame, or 0
    Addr locals = 0;          // first local variable slot
    Addr stackBase = 0;       // first value-stack slot
    Addr stackTop = 0;        // one past the top value (meaningful while suspended)
    int state = 0;            // 3.10: f_state (later versions keep it in the generator)
    bool hidden = false;      // C entry frame or interpreter shim
};

struct WalkedFrame {
    Frame frame;
    Addr addr = 0;
    Addr gen = 0;
};

struct WalkedStack {
    std::vector<WalkedFrame> frames;  // innermost first
    bool truncated = false;
    std::optional<std::string> error;  // set when the chain tore: frames are a prefix
};

class FrameWalker {
public:
    explicit FrameWalker(CodeReader& codes, Objects& objects) : m_codes(codes), m_objects(objects) {}

    // Throws BadRead when a frame in the chain cannot be read or makes no sense.
    RawFrame read(Addr frame);

    // Walks outward from `first`; a torn chain ends the walk with `error` set.
    WalkedStack walk(Addr first, std::size_t maxFrames = limits::kMaxFrames);

    Frame describe(const RawFrame& raw) { return m_codes.frameAt(m_codes.get(raw.code), raw.lasti); }
    CodeReader& codes() { return m_codes; }

private:
    CodeReader& m_codes;
    Objects& m_objects;
};

}  // namespace aioscope
