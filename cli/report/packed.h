// "aioscope/packed/1": the compact form of the JSON a report embeds (the
// viewer's js/core/packed.js reads it; the format is described there). A
// snapshot of 100,000 tasks repeats the same stacks, files and key names
// 100,000 times: storing each repeated subtree once and each object's keys
// once per key set makes the report several times smaller, and stays JSON.
#pragma once

#include <nlohmann/json.hpp>

namespace aioscope::cli::report {

nlohmann::json pack(const nlohmann::json& doc);

// The inverse, for tests. Throws std::runtime_error on malformed input.
nlohmann::json unpack(const nlohmann::json& packed);

}  // namespace aioscope::cli::report
