// Which pytest test the process is running: PYTEST_CURRENT_TEST, which
// pytest sets in os.environ at each phase of each test ("path::name (call)").
// Read from memory (os.environ._data), without the GIL, for the events the
// agent's own thread makes; the observers read os.environ themselves.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events.h"
#include "layout/resolve.h"

namespace aioscope::agent {

// "tests/t.py::test_a[x y] (call)" -> {"tests/t.py::test_a[x y]", "call"}.
std::optional<TestRef> parsePytestCurrentTest(std::string_view value);

// The running test, or nullopt (not pytest, between tests, or unreadable).
// A process that does not run pytest itself (it inherited the variable from
// one that does) has none; nor has a pytest run by a test of another pytest
// before its own first test sets the variable (the value it inherited).
// Any thread; each call reads afresh.
std::optional<TestRef> readCurrentTest(const ResolvedRuntime& runtime);

// PYTEST_CURRENT_TEST as the process inherited it (its environment at exec,
// /proc/self/environ), or "".
const std::string& inheritedPytestCurrentTest();

}  // namespace aioscope::agent
