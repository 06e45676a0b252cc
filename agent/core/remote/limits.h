// Every bound on what aioscope will read from a target, in one place. Values
// read from the target are untrusted: a torn or hostile length must never make
// us allocate without limit or loop forever.
#pragma once

#include <cstddef>

namespace aioscope::limits {

constexpr std::size_t kMaxStringChars = 1 << 16;     // names, file names, messages
constexpr std::size_t kMaxBytes = 1 << 22;           // line tables, bytecode
constexpr std::size_t kMaxTupleItems = 1 << 16;
constexpr std::size_t kMaxListItems = 1 << 22;
constexpr std::size_t kMaxDictEntries = 1 << 20;
constexpr std::size_t kMaxSetSlots = 1 << 23;
constexpr std::size_t kMaxInterpreters = 256;
constexpr std::size_t kMaxThreads = 1 << 14;
constexpr std::size_t kMaxFrames = 1 << 15;
constexpr std::size_t kMaxTypeDepth = 64;            // tp_base chain
constexpr std::size_t kMaxTypeName = 256;
constexpr std::size_t kMaxTasks = 1 << 22;             // per list; far beyond any real program
constexpr std::size_t kMaxChain = 1 << 12;             // coroutines awaiting coroutines

}  // namespace aioscope::limits
