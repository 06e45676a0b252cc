// The snapshot's JSON form ("aioscope/snapshot/1", docs/json-schema.md), both
// ways: streamed out by dump and the agent, read back by `aioscope render`.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>

#include "model/json_writer.h"
#include "model/snapshot.h"

namespace aioscope {

void writeJson(const Snapshot& snap, std::ostream& out);

// Pieces reused by other documents (the agent's events).
void writeFrames(JsonWriter& w, const Stack& frames);
void writeThreads(JsonWriter& w, const std::vector<Thread>& threads);
void writeTask(JsonWriter& w, const Task& task);
void writeTasks(JsonWriter& w, const std::vector<Task>& tasks);
void writeFindings(JsonWriter& w, const std::vector<Finding>& findings);

// The document as a JSON value (small snapshots; tests).
nlohmann::json toJson(const Snapshot& snap);

// Throws InspectError(bad_input) naming the first thing that is wrong.
Snapshot snapshotFromJson(const nlohmann::json& doc);
Frame frameFromJson(const nlohmann::json& doc);

}  // namespace aioscope
