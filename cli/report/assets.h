// The viewer's files (viewer/), embedded into the binary at build time by
// embed_viewer.cmake, for `aioscope report` to inline into one HTML file.
#pragma once

#include <cstddef>
#include <string_view>

namespace aioscope::cli::report {

struct Asset {
    std::string_view path;  // relative to viewer/, e.g. "js/app.js"
    std::string_view content;
};

extern const Asset kViewerAssets[];
extern const std::size_t kViewerAssetCount;

// The file's content; throws InspectError(internal) if the build has no such file.
std::string_view viewerAsset(std::string_view path);

}  // namespace aioscope::cli::report
