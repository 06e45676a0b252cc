#include "callout.h"

namespace aioscope::agent {

PyObject* callOutVector(VectorcallFn fn, PyObject* callable, PyObject* const* args, std::size_t nargs,
                        PyObject* kwnames) {
    return fn(callable, args, nargs, kwnames);
}

PyObject* callOutMethod(FastKeywordsFn fn, PyObject* self, PyObject* const* args, std::ptrdiff_t nargs,
                        PyObject* kwnames) {
    return fn(self, args, nargs, kwnames);
}

PyObject* callOutTuple(PyObject* callable, PyObject* args, PyObject* kwargs) {
    return python().call(callable, args, kwargs);
}

}  // namespace aioscope::agent
