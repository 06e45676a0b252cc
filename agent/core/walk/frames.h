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
#include "remote/witness.h"
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
    // Every frame met, shown or not (C entry frames, shims), innermost
    // first, and for each how many shown frames came before it.
    std::vector<std::pair<Addr, std::size_t>> chain;
    // With facts asked for, parallel to `chain`: what ties each frame to the
    // next (its link and code), and its instruction, which moves on only
    // while it is the innermost frame.
    struct FrameFacts {
        Witness link;
        Witness instr;
    };
    std::vector<FrameFacts> facts;
    bool truncated = false;            // deeper than maxFrames: the outermost are left out
    std::size_t omitted = 0;           // how many were left out (at least; counting is bounded too)
    std::optional<std::string> error;  // set when the chain tore: frames are a prefix
};

class FrameWalker {
public:
    explicit FrameWalker(CodeReader& codes, Objects& objects) : m_codes(codes), m_objects(objects) {}

    // Throws BadRead when a frame in the chain cannot be read or makes no sense.
    RawFrame read(Addr frame);

    // Walks outward from `first`; a torn chain ends the walk with `error` set.
    // Beyond maxFrames the innermost frames are kept and the rest counted.
    // With `facts`, records per frame what a second look must find again.
    WalkedStack walk(Addr first, std::size_t maxFrames = limits::kMaxFrames, bool facts = false);

    Frame describe(const RawFrame& raw) { return m_codes.frameAt(m_codes.get(raw.code), raw.lasti); }
    CodeReader& codes() { return m_codes; }

private:
    // What ties a frame to the next and names its code, decoded from the
    // frame's bytes the same way for the walk and the prefetch. Absent when
    // the bytes are not a frame (3.10: not of the frame type), which ends
    // both.
    struct Link {
        Addr previous = 0;
        Addr code = 0;
        std::uint8_t owner = 0;  // 3.11+: who owns the frame
        bool entry = false;      // a C entry frame or shim (3.11+): no code to show
    };
    std::optional<Link> link(const Block& frame) const;
    void prefetch(Addr first, std::size_t maxFrames);

    CodeReader& m_codes;
    Objects& m_objects;
};

}  // namespace aioscope
