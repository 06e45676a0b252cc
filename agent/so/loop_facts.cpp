#include "loop_facts.h"

#include <unistd.h>

#include "walk/interpreters.h"
#include "walk/running.h"

namespace aioscope::agent {

LoopFacts readLoopFacts(SnapshotReader& reader) {
    LoopFacts facts;
    reader.forget();
    try {
        const ResolvedRuntime& rt = reader.runtime();
        Objects& objects = reader.objects();
        auto interps = readInterpreters(reader.memory(), rt.layout, rt.runtime);
        if (interps.empty()) return facts;
        const InterpreterState& main = interps.back();
        if (main.modules) {
            facts.asyncioImported = objects.dictGet(main.modules, "asyncio").has_value();
            facts.trio = objects.dictGet(main.modules, "trio").has_value();
        }
        if (facts.asyncioImported) {
            auto threads = readThreads(reader.memory(), rt.layout, main);
            auto loops = readRunningLoops(objects, main, threads, getpid());
            bool asyncioLoop = false;
            std::string foreign;
            for (const auto& [thread, loop] : loops.loopOfThread) {
                if (objects.isInstance(loop, "BaseEventLoop")) {
                    asyncioLoop = true;
                } else if (objects.isInstance(loop, "uvloop.loop.Loop")) {
                    facts.uvloop = true;
                } else {
                    foreign = objects.typeNameOf(loop);
                }
            }
            if (!asyncioLoop && !facts.uvloop && !foreign.empty()) facts.foreignLoop = foreign;
        }
    } catch (const std::exception&) {
        // Torn: the next look will tell.
    }
    reader.forget();
    return facts;
}

}  // namespace aioscope::agent
