// The Errc of the InspectError a call throws, for tests of error paths.
// (Catch2 v2 has no matcher for an exception's members.)
#pragma once

#include <optional>

#include "errors.h"

namespace aioscope::test {

// nullopt if f throws no InspectError; other exceptions propagate.
template <class F>
std::optional<Errc> errorCode(F&& f) {
    try {
        f();
    } catch (const InspectError& e) {
        return e.code();
    }
    return std::nullopt;
}

}  // namespace aioscope::test
