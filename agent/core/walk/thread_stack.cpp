#include "walk/thread_stack.h"

#include <unordered_map>
#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace aioscope {

namespace {

constexpr int kAttempts = 8;
// How far the thread may have gone deeper than the frames read, and still be
// followed back to them.
constexpr int kMaxNewFrames = 256;

// Frames of 3.11+ live in the thread's data stack, a few contiguous chunks:
// copying their used part in one batch (one system call) gives an image of
// all of them at one instant, which the walk then reads.
constexpr std::size_t kMaxImage = std::size_t{1} << 20;

void imageDatastack(Remote& mem, Remote& now, const Layout& L, Addr tstate) {
    if (L.thread.datastackChunk == kAbsent) return;
    std::uint64_t chunkTop[2] = {};
    if (!now.tryRead(tstate + static_cast<Addr>(L.thread.datastackChunk), chunkTop, sizeof chunkTop)) return;
    std::vector<std::pair<Addr, std::size_t>> ranges;
    std::size_t total = 0;
    auto add = [&](Addr from, Addr to) {
        if (!from || to <= from || to - from > kMaxImage - total) return false;
        ranges.emplace_back(from, to - from);
        total += to - from;
        return true;
    };
    if (!add(chunkTop[0], chunkTop[1])) return;
    Addr chunk = chunkTop[0];
    for (int i = 0; i < 16; ++i) {
        std::uint64_t previous = 0;
        if (!now.tryRead(chunk, &previous, 8) || !previous) break;
        std::uint64_t header[3] = {};  // previous, size, top (slots used)
        if (!now.tryRead(previous, header, sizeof header) || header[2] > kMaxImage / 8) break;
        if (!add(previous, previous + 24 + 8 * header[2])) break;
        chunk = previous;
    }
    std::vector<std::uint8_t> scratch(total);
    std::vector<MemoryReader::Request> requests;
    std::size_t at = 0;
    for (const auto& [from, len] : ranges) {
        mem.reader().forget(from, len);
        for (std::size_t off = 0; off < len; off += 4 * 4096) {
            std::size_t n = std::min<std::size_t>(4 * 4096, len - off);
            requests.push_back({from + off, scratch.data() + at + off, n});
        }
        at += len;
    }
    mem.reader().readMany(requests);
}

}  // namespace

ThreadStackRead readThreadStack(FrameWalker& frames, Remote& mem, MemoryReader& fresh, const Layout& L,
                                Addr tstate, Addr first, Witness* witness) {
    ThreadStackRead out;
    Remote now(fresh);
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        out.rounds = attempt;
        // Pages cached before may be stale: after a failed look, the ones the
        // frames read lived on are read again (3.11+ data stacks are copied
        // anew below anyway).
        if (attempt >= 2) {
            mem.reader().forget();  // a walk that tore where no page was dropped
        } else if (attempt == 1) {
            for (const auto& [addr, shown] : out.stack.chain) {
                mem.reader().forget(addr, static_cast<std::size_t>(L.frame.size));
            }
            mem.reader().forget(first, static_cast<std::size_t>(L.frame.size));
        }
        if (attempt > 0 || !first) {
            try {
                first = readCurrentFrame(now, L, tstate);
            } catch (const BadRead& e) {
                out.stack = WalkedStack{};
                out.stack.error = e.what();
                continue;
            }
        }
        imageDatastack(mem, now, L, tstate);
        WalkedStack walked = frames.walk(first, limits::kMaxFrames, true);
        out.stack = walked;
        if (walked.error) continue;
        std::unordered_map<Addr, std::size_t> at;
        for (std::size_t i = 0; i < walked.chain.size(); ++i) at.emplace(walked.chain[i].first, i);
        // Where the thread's stack now meets the frames read: from there
        // outward they are still its frames. (Followed again if the thread
        // moves under this short walk too.)
        std::optional<std::size_t> met;
        bool stillEmpty = false;
        for (int look = 0; look < 3 && !met && !stillEmpty; ++look) {
            Addr a = 0;
            try {
                a = readCurrentFrame(now, L, tstate);
            } catch (const BadRead&) {
                continue;
            }
            if (walked.chain.empty()) {
                // A thread between two evaluations shows no frame for an
                // instant: only one that still shows none a moment later
                // has none.
                if (a == first) {
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                    try {
                        stillEmpty = readCurrentFrame(now, L, tstate) == first;
                    } catch (const BadRead&) {
                    }
                }
                continue;
            }
            for (int i = 0; a && i < kMaxNewFrames; ++i) {
                if (auto it = at.find(a); it != at.end()) {
                    met = it->second;
                    break;
                }
                std::uint64_t prev = 0;
                if (!now.tryRead(a + static_cast<Addr>(L.frame.previous), &prev, 8)) break;
                a = prev;
            }
        }
        if (walked.chain.empty()) {
            if (stillEmpty) return out;  // no Python frame, still none
            out.stack.error = "its frames changed while they were read";
            continue;
        }
        if (!met) {
            out.stack.error = "the thread moved to other calls while its frames were read";
            continue;
        }
        // ...and they must still read as they did: each one's link and code,
        // and the instruction of all but the new innermost one.
        std::vector<const Witness*> ws;
        for (std::size_t i = *met; i < walked.facts.size(); ++i) {
            ws.push_back(&walked.facts[i].link);
            if (i > *met) ws.push_back(&walked.facts[i].instr);
        }
        auto holds = Witness::check(fresh, ws);
        if (std::find(holds.begin(), holds.end(), false) != holds.end()) {
            out.stack.error = "its frames changed while they were read";
            continue;
        }
        // Frames above the one met have returned: leave them out.
        std::size_t dropped = walked.chain[*met].second;
        out.stack.frames.erase(out.stack.frames.begin(), out.stack.frames.begin() + static_cast<long>(dropped));
        out.stack.chain.erase(out.stack.chain.begin(), out.stack.chain.begin() + static_cast<long>(*met));
        out.stack.facts.erase(out.stack.facts.begin(), out.stack.facts.begin() + static_cast<long>(*met));
        for (auto& c : out.stack.chain) c.second -= dropped;
        if (witness) {
            for (const Witness* w : ws) witness->append(*w);
        }
        return out;
    }
    if (!out.stack.error) out.stack.error = "its frames changed while they were read";
    return out;
}

}  // namespace aioscope
