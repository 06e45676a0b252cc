// The snapshot's JSON form ("aioscope/snapshot/1", docs/json-schema.md), both
// ways: streamed out by dump and the agent, read back by `aioscope render`.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <unordered_map>

#include "model/json_writer.h"
#include "model/snapshot.h"

namespace aioscope {

void writeJson(const Snapshot& snap, std::ostream& out);

// Pieces reused by other documents (the agent's events).
void writeFrames(JsonWriter& w, const Stack& frames);
void writeThreads(JsonWriter& w, const std::vector<Thread>& threads);
void writeThreadWait(JsonWriter& w, const std::optional<ThreadWait>& wait);
void writeTask(JsonWriter& w, const Task& task);
// Stacks shared between tasks, as written (all at the same depth: the tasks
// of one array), keyed by the shared stack.
using StackTexts = std::unordered_map<const Stack*, std::string>;
void writeTask(JsonWriter& w, const Task& task, StackTexts* stacks);
void writeTasks(JsonWriter& w, const std::vector<Task>& tasks);
void writeFindings(JsonWriter& w, const std::vector<Finding>& findings);

// The document as a JSON value (small snapshots; tests).
nlohmann::json toJson(const Snapshot& snap);

// Throws InspectError(bad_input) naming the first thing that is wrong.
Snapshot snapshotFromJson(const nlohmann::json& doc);
Frame frameFromJson(const nlohmann::json& doc);

}  // namespace aioscope
