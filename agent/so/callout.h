// The agent's calls into the program's Python code from its wrappers (a
// callback's Context.run, Handle._run, an observed function). While the
// program runs under one of them (a callback, a task step, and for ever in
// a child forked inside one), agent code stays on the thread's stack. These
// functions are the only places where it may: they hold nothing and do
// nothing but the call, and they live in their own section, so `attach`
// can tell a thread suspended in a call out of the agent, where loading the
// agent again is safe, from agent code under way, where it is not
// (cli/inject/safe_point.cpp reads the section's bounds from the file).
#pragma once

#include <cstddef>

#include "agent_protocol.h"
#include "pyapi.h"

// noipa: never inlined into the wrapper (the call must be to this section)
// nor specialised into a clone placed in .text.
#define AIOSCOPE_CALLOUT __attribute__((noipa, section(AIOSCOPE_CALLOUT_SECTION)))

namespace aioscope::agent {

using VectorcallFn = PyObject* (*)(PyObject*, PyObject* const*, std::size_t, PyObject*);
using FastKeywordsFn = PyObject* (*)(PyObject*, PyObject* const*, std::ptrdiff_t, PyObject*);

// fn(callable, args, nargs, kwnames): PyObject_Vectorcall and its kin.
AIOSCOPE_CALLOUT PyObject* callOutVector(VectorcallFn fn, PyObject* callable, PyObject* const* args,
                                         std::size_t nargs, PyObject* kwnames);
// fn(self, args, nargs, kwnames): a METH_FASTCALL | METH_KEYWORDS method.
AIOSCOPE_CALLOUT PyObject* callOutMethod(FastKeywordsFn fn, PyObject* self, PyObject* const* args,
                                         std::ptrdiff_t nargs, PyObject* kwnames);
// PyObject_Call(callable, args, kwargs).
AIOSCOPE_CALLOUT PyObject* callOutTuple(PyObject* callable, PyObject* args, PyObject* kwargs);

}  // namespace aioscope::agent
