/* Records the 3.13 values test_layout_tables.cpp checks (not built by CMake):
 *   gcc -w -I/root/.pyenv/versions/3.13.0/include/python3.13 \
 *       -I/root/.pyenv/versions/3.13.0/include/python3.13/internal offsets313.c && ./a.out
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#define P(s, m) printf("%-28s %-28s %zu\n", #s, #m, offsetof(s, m))
#define S(s) printf("%-28s %-28s %zu\n", #s, "sizeof", sizeof(s))
int main(void) {
    P(PyThreadState, dict);
    P(_PyInterpreterFrame, stacktop);
    P(PyCodeObject, co_flags);
    P(PyCodeObject, _co_firsttraceable);
    P(PyHeapTypeObject, ht_cached_keys);
    S(PyCompactUnicodeObject);
    P(PyUnicodeObject, data.any);
    P(PyGenObject, gi_iframe);
    P(PyGenObject, gi_name);
    P(PyGenObject, gi_qualname);
    P(PyGenObject, gi_frame_state);
    P(PyDictValues, values);
    printf("FRAME_CREATED %d FRAME_SUSPENDED %d FRAME_SUSPENDED_YIELD_FROM %d FRAME_EXECUTING %d FRAME_CLEARED %d FRAME_OWNED_BY_CSTACK %d\n", FRAME_CREATED, FRAME_SUSPENDED, FRAME_SUSPENDED_YIELD_FROM, FRAME_EXECUTING, FRAME_CLEARED, FRAME_OWNED_BY_CSTACK);
    return 0;
}
