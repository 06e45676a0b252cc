// The CLI's heap in huge pages: a dump of 10,000 tasks writes ~20 MB of
// fresh memory (the task records, the values re-read to check them, the
// output), and this VM-like machine takes ~10 µs per 4 KiB page faulted in:
// a quarter of the dump's time went to page faults (docs/how-it-works.md
// #reading-memory).
#pragma once

namespace aioscope::cli {

// Grows the heap in large steps and asks the kernel to back it with huge
// pages (advice only: without transparent huge pages nothing changes).
// Call once, first thing in main(), for `dump` only: the heap is never
// trimmed back, which a long-running command (`run`, `attach`) cannot afford.
void preferHugeHeapPages();

}  // namespace aioscope::cli
