#include "report/html.h"

#include "errors.h"
#include "report/assets.h"

namespace aioscope::cli::report {

std::string_view viewerAsset(std::string_view path) {
    for (std::size_t i = 0; i < kViewerAssetCount; ++i) {
        if (kViewerAssets[i].path == path) return kViewerAssets[i].content;
    }
    throw InspectError(Errc::internal, "this aioscope was built without viewer/" + std::string(path));
}

std::string escapeForScript(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 16);
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '<') out += "\\u003c";
        else if (c == '>') out += "\\u003e";
        else if (c == '&') out += "\\u0026";
        else if (c == '\xe2' && i + 2 < text.size() && text[i + 1] == '\x80' && (text[i + 2] == '\xa8' || text[i + 2] == '\xa9')) {
            out += text[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

namespace {

// Replaces each `<open>PATH<close>` in `page` by what `inline_(PATH)` returns.
template <typename F>
std::string replaceRefs(const std::string& page, std::string_view open, std::string_view close, F inline_) {
    std::string out;
    std::size_t pos = 0;
    for (;;) {
        std::size_t at = page.find(open, pos);
        if (at == std::string::npos) break;
        std::size_t end = page.find(close, at + open.size());
        if (end == std::string::npos) break;
        out.append(page, pos, at - pos);
        out += inline_(std::string_view(page).substr(at + open.size(), end - at - open.size()));
        pos = end + close.size();
    }
    out.append(page, pos, std::string::npos);
    return out;
}

}  // namespace

void writeReportHtml(std::ostream& out, const nlohmann::json& data) {
    std::string page(viewerAsset("index.html"));
    page = replaceRefs(page, "<link rel=\"stylesheet\" href=\"", "\">", [](std::string_view path) {
        return "<style>\n" + std::string(viewerAsset(path)) + "</style>";
    });
    page = replaceRefs(page, "<script src=\"", "\"></script>", [](std::string_view path) {
        return "<script>\n" + std::string(viewerAsset(path)) + "</script>";
    });
    const std::string marker = "<!--aioscope-data-->";
    std::size_t at = page.find(marker);
    if (at == std::string::npos) throw InspectError(Errc::internal, "viewer/index.html has no data marker");
    out.write(page.data(), static_cast<std::streamsize>(at));
    out << "<script type=\"application/json\" id=\"aioscope-data\">"
        << escapeForScript(data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) << "</script>";
    out << std::string_view(page).substr(at + marker.size());
}

}  // namespace aioscope::cli::report
