/* What fastpath.c (the module: the system-call gate) and faultpath.c (the fault hook) share. */
#ifndef SANDBOX_FAULTPATH_H
#define SANDBOX_FAULTPATH_H
#include <Python.h>

/* Fill `out` with the `n` function addresses of tuple `fns`; -1 with an exception if not. */
int fastpath_parse_addresses(PyObject *fns, void **out, Py_ssize_t n);
/* Add the FaultPath type to the module; -1 with an exception on failure. */
int faultpath_add_type(PyObject *module);

#endif
