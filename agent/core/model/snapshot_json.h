// The snapshot's JSON form ("aioscope/snapshot/1", docs/json-schema.md), both
// ways: written by dump and the agent, read back by `aioscope render`.
#pragma once

#include <nlohmann/json.hpp>

#include "model/snapshot.h"

namespace aioscope {

nlohmann::json toJson(const Snapshot& snap);
nlohmann::json toJson(const Frame& frame);

// Throws InspectError(bad_input) naming the first thing that is wrong.
Snapshot snapshotFromJson(const nlohmann::json& doc);
Frame frameFromJson(const nlohmann::json& doc);

}  // namespace aioscope
