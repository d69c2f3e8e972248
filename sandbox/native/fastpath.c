/* The system-call entry in C: one register read per call, and trivial getters answered here.
 *
 * Why this exists: through ctypes, the kernel's entry paid ~0.8 us per register read and
 * ~0.7 us to write RAX back, and a bare Python callback costs ~0.15 us more (issue 17). This
 * module is a CPython extension (built by `make compile`; sandbox/fastpath.py loads it and
 * keeps the pure-Python path when it is absent) whose UC_HOOK_INSN hook:
 *
 *   1. reads RAX, RDI, RSI, RDX, R10, R8, R9 with one uc_reg_read_batch and hands Python
 *      the tuple (`args()`), then calls the machine's entry with no arguments; `set_return`
 *      writes RAX in one C call;
 *   2. answers getpid, getppid, gettid and the getuid family without calling Python, when
 *      Python has published the answer for the task on the CPU (`publish`). Every call
 *      handled in Python other than one of these getters withdraws every answer (it may have
 *      changed them: fork, exec, kill reparenting a child...), and so does the scheduler at
 *      each switch (`forget`): an answer is only ever what the kernel itself computed for
 *      the same task with nothing run in Python since. Python publishes only while nobody
 *      watches each call (sandbox/kernel/kernel.py `_publish`). Calls answered here are
 *      counted per getter (`take_counts`); `on_answered` is called to take them before
 *      Python next runs, and the kernel takes them when its counts are read.
 *
 * The hook runs without the GIL (ctypes releases it around uc_emu_start) and takes it only
 * to call Python. Unicorn's functions are passed in as addresses by the machine, so this
 * file needs no Unicorn headers and serves whichever libunicorn the binding loaded. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include "structmember.h"

#include "faultpath.h"

#define NREGS 7          /* RAX and the six argument registers (x86-64 ABI, man 2 syscall) */
#define MAX_NR 512       /* numbers below this may have a published answer */
#define MAX_GETTERS 16   /* getters with an answer slot */

typedef int (*reg_read_batch_fn)(void *uc, int *regs, void **vals, int count);
typedef int (*reg_write_fn)(void *uc, int regid, const void *value);
typedef int (*emu_stop_fn)(void *uc);
typedef int (*hook_add_fn)(void *uc, size_t *hh, int type, void *callback, void *user_data,
                           uint64_t begin, uint64_t end, ...);
typedef int (*hook_del_fn)(void *uc, size_t hh);

typedef struct {
    PyObject_HEAD
    void *uc;
    reg_read_batch_fn read_batch;
    reg_write_fn reg_write;
    emu_stop_fn emu_stop;
    hook_del_fn hook_del;
    size_t hook;              /* the UC_HOOK_INSN handle; 0 once closed */
    int hooked;
    int regs[NREGS];          /* Unicorn's ids of RAX, RDI, RSI, RDX, R10, R8, R9 */
    uint64_t vals[NREGS];
    void *ptrs[NREGS];
    PyObject *entry;          /* called with no arguments for every call not answered here */
    PyObject *args;           /* (nr, a0..a5) of the call Python is handling */
    int enabled;              /* 0: every call goes to Python (SANDBOX_FAST_PATH=0, tests) */
    int8_t slot_of[MAX_NR];   /* number -> getter slot, -1 if none */
    int ngetters;
    int valid[MAX_GETTERS];   /* the slot's answer is current for the task on the CPU */
    uint64_t answer[MAX_GETTERS];
    uint64_t count[MAX_GETTERS];  /* calls answered here, not yet taken */
    int untaken;              /* some count is not zero */
    PyObject *on_answered;    /* called (GIL held) before Python runs, while counts wait */
} FastPath;

/* -- the hook -------------------------------------------------------------------------------- */

static void forget_all(FastPath *fp) {
    memset(fp->valid, 0, sizeof fp->valid);
}

static int answer_here(FastPath *fp, uint64_t nr) {
    int slot = nr < MAX_NR ? fp->slot_of[nr] : -1;
    if (slot < 0) {
        forget_all(fp);  /* Python may change what a getter answers */
        return 0;
    }
    if (!fp->enabled || !fp->valid[slot])
        return 0;
    fp->reg_write(fp->uc, fp->regs[0], &fp->answer[slot]);
    fp->count[slot]++;
    fp->untaken = 1;
    return 1;
}

static PyObject *args_tuple(const uint64_t *vals) {
    PyObject *tuple = PyTuple_New(NREGS);
    if (tuple == NULL)
        return NULL;
    for (int i = 0; i < NREGS; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(vals[i]);
        if (value == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, value);
    }
    return tuple;
}

/* Python's entry catches everything a call raises (Machine._syscall_entry); an exception
 * that still escapes (one raised before its `try`) is reported as ctypes reported one from
 * its callbacks, and the CPU stops rather than run on with RAX unset. */
/* Let Python take the counts before it runs anything that might read them (on_answered
 * calls take_counts): they are then exact wherever Python looks during a run. */
static int report_answered(FastPath *fp) {
    if (!fp->untaken || fp->on_answered == NULL || fp->on_answered == Py_None)
        return 0;
    PyObject *callback = Py_NewRef(fp->on_answered);
    PyObject *result = PyObject_CallNoArgs(callback);
    Py_DECREF(callback);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

static void call_python(FastPath *fp) {
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *entry = Py_NewRef(fp->entry);  /* alive even if the call closes the gate */
    PyObject *args = report_answered(fp) ? NULL : args_tuple(fp->vals);
    if (args != NULL) {
        Py_XSETREF(fp->args, args);
        PyObject *result = PyObject_CallNoArgs(entry);
        Py_XDECREF(result);
    }
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable(entry);
        if (fp->uc != NULL)
            fp->emu_stop(fp->uc);
    }
    Py_DECREF(entry);
    PyGILState_Release(gil);
}

static void syscall_hook(void *uc, void *user_data) {
    FastPath *fp = user_data;
    (void)uc;
    if (fp->entry == NULL)  /* closed during this run: Unicorn skips a deleted hook, but be sure */
        return;
    fp->read_batch(fp->uc, fp->regs, fp->ptrs, NREGS);
    if (!answer_here(fp, fp->vals[0]))
        call_python(fp);
}

/* -- Python's side ---------------------------------------------------------------------------- */

int fastpath_parse_addresses(PyObject *fns, void **out, Py_ssize_t n) {
    if (!PyTuple_Check(fns) || PyTuple_GET_SIZE(fns) != n) {
        PyErr_Format(PyExc_ValueError, "expected a tuple of %zd function addresses", n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(fns, i));
        if (out[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "function address %zd is null", i);
            return -1;
        }
    }
    return 0;
}

static int parse_ints(PyObject *seq, int *out, Py_ssize_t n, const char *what) {
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "expected a tuple of %zd %s", n, what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static int set_getters(FastPath *fp, PyObject *getters) {
    if (!PyTuple_Check(getters) || PyTuple_GET_SIZE(getters) > MAX_GETTERS) {
        PyErr_Format(PyExc_ValueError, "getters: a tuple of at most %d numbers", MAX_GETTERS);
        return -1;
    }
    memset(fp->slot_of, -1, sizeof fp->slot_of);
    fp->ngetters = (int)PyTuple_GET_SIZE(getters);
    for (int i = 0; i < fp->ngetters; i++) {
        long nr = PyLong_AsLong(PyTuple_GET_ITEM(getters, i));
        if (nr == -1 && PyErr_Occurred())
            return -1;
        if (nr < 0 || nr >= MAX_NR) {
            PyErr_Format(PyExc_ValueError, "getter number %ld outside [0, %d)", nr, MAX_NR);
            return -1;
        }
        fp->slot_of[nr] = (int8_t)i;
    }
    return 0;
}

/* FastPath(uc, (read_batch, reg_write, emu_stop, hook_add, hook_del), regs, hook_type,
 *          syscall_insn, entry, getters): hook the engine's syscall instruction. */
static int FastPath_init(FastPath *fp, PyObject *args, PyObject *kwds) {
    PyObject *uc, *fns, *regs, *entry, *getters;
    int hook_type, insn;
    void *fn[5];
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "FastPath takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOiiOO", &uc, &fns, &regs, &hook_type, &insn, &entry, &getters))
        return -1;
    if (fp->hooked) {
        PyErr_SetString(PyExc_RuntimeError, "FastPath is already hooked");
        return -1;
    }
    fp->uc = PyLong_AsVoidPtr(uc);
    if (fp->uc == NULL || fastpath_parse_addresses(fns, fn, 5) || parse_ints(regs, fp->regs, NREGS, "registers")
            || set_getters(fp, getters))
        return -1;
    if (!PyCallable_Check(entry)) {
        PyErr_SetString(PyExc_TypeError, "entry must be callable");
        return -1;
    }
    fp->read_batch = (reg_read_batch_fn)fn[0];
    fp->reg_write = (reg_write_fn)fn[1];
    fp->emu_stop = (emu_stop_fn)fn[2];
    fp->hook_del = (hook_del_fn)fn[4];
    for (int i = 0; i < NREGS; i++)
        fp->ptrs[i] = &fp->vals[i];
    Py_INCREF(entry);
    Py_XSETREF(fp->entry, entry);
    fp->enabled = 1;
    int err = ((hook_add_fn)fn[3])(fp->uc, &fp->hook, hook_type, (void *)syscall_hook, fp, 1, 0, insn);
    if (err) {
        PyErr_Format(PyExc_RuntimeError, "uc_hook_add failed (uc_err %d)", err);
        return -1;
    }
    fp->hooked = 1;
    return 0;
}

static PyObject *FastPath_args(FastPath *fp, PyObject *unused) {
    (void)unused;
    if (fp->args == NULL)
        return PyTuple_Pack(0);
    return Py_NewRef(fp->args);
}

static PyObject *FastPath_set_return(FastPath *fp, PyObject *value) {
    if (!fp->hooked)
        return PyErr_Format(PyExc_RuntimeError, "the gate is not hooked to an engine");
    uint64_t rax = PyLong_AsUnsignedLongLongMask(value);  /* a negative errno: two's complement */
    if (rax == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    int err = fp->reg_write(fp->uc, fp->regs[0], &rax);
    if (err)
        return PyErr_Format(PyExc_RuntimeError, "uc_reg_write failed (uc_err %d)", err);
    Py_RETURN_NONE;
}

static PyObject *FastPath_publish(FastPath *fp, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "publish(nr, answer) takes 2 arguments");
    long nr = PyLong_AsLong(args[0]);
    if (nr == -1 && PyErr_Occurred())
        return NULL;
    int slot = nr >= 0 && nr < MAX_NR ? fp->slot_of[nr] : -1;
    if (slot < 0)
        return PyErr_Format(PyExc_ValueError, "system call %ld has no answer slot", nr);
    uint64_t answer = PyLong_AsUnsignedLongLongMask(args[1]);
    if (answer == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    fp->answer[slot] = answer;
    fp->valid[slot] = 1;
    Py_RETURN_NONE;
}

static PyObject *FastPath_forget(FastPath *fp, PyObject *unused) {
    (void)unused;
    forget_all(fp);
    if (report_answered(fp))
        return NULL;
    Py_RETURN_NONE;
}

/* The calls answered here since the last take, per getter in `getters` order; zeroed. */
static PyObject *FastPath_take_counts(FastPath *fp, PyObject *unused) {
    (void)unused;
    PyObject *tuple = PyTuple_New(fp->ngetters);
    if (tuple == NULL)
        return NULL;
    for (int i = 0; i < fp->ngetters; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(fp->count[i]);
        if (n == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, n);
    }
    memset(fp->count, 0, sizeof fp->count);
    fp->untaken = 0;
    return tuple;
}

static PyObject *FastPath_close(FastPath *fp, PyObject *unused) {
    (void)unused;
    if (fp->hooked) {
        fp->hook_del(fp->uc, fp->hook);
        fp->hooked = 0;
        fp->uc = NULL;
    }
    Py_CLEAR(fp->entry);
    Py_CLEAR(fp->args);
    Py_CLEAR(fp->on_answered);
    Py_RETURN_NONE;
}

static int FastPath_traverse(FastPath *fp, visitproc visit, void *arg) {
    Py_VISIT(fp->entry);
    Py_VISIT(fp->args);
    Py_VISIT(fp->on_answered);
    return 0;
}

static int FastPath_clear(FastPath *fp) {
    Py_CLEAR(fp->entry);
    Py_CLEAR(fp->args);
    Py_CLEAR(fp->on_answered);
    return 0;
}

/* Never unhooks: the engine may already be closed (it frees its hooks itself). The owner
 * keeps this object alive as long as the engine, or calls close() first. */
static void FastPath_dealloc(FastPath *fp) {
    PyObject_GC_UnTrack(fp);
    FastPath_clear(fp);
    Py_TYPE(fp)->tp_free((PyObject *)fp);
}

static PyMethodDef FastPath_methods[] = {
    {"args", (PyCFunction)FastPath_args, METH_NOARGS, "(nr, a0..a5) of the call being handled."},
    {"set_return", (PyCFunction)FastPath_set_return, METH_O, "Write RAX (a negative value as two's complement)."},
    {"publish", (PyCFunction)(void (*)(void))FastPath_publish, METH_FASTCALL,
     "publish(nr, answer): answer getter `nr` here until something withdraws it."},
    {"forget", (PyCFunction)FastPath_forget, METH_NOARGS, "Withdraw every published answer."},
    {"take_counts", (PyCFunction)FastPath_take_counts, METH_NOARGS,
     "Calls answered here since the last take, per getter; zeroes them."},
    {"close", (PyCFunction)FastPath_close, METH_NOARGS,
     "Unhook from the engine (before it closes); set_return then raises RuntimeError."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef FastPath_members[] = {
    {"enabled", T_INT, offsetof(FastPath, enabled), 0, "0: every call goes to Python."},
    {"on_answered", T_OBJECT, offsetof(FastPath, on_answered), 0,
     "Called with no arguments before Python runs (a call, forget()) while counts wait to be taken."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sandbox.native._fastpath.FastPath",
    .tp_doc = "The engine's syscall hook: registers in one read, published getters answered in C.",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_traverse = (traverseproc)FastPath_traverse,
    .tp_clear = (inquiry)FastPath_clear,
    .tp_methods = FastPath_methods,
    .tp_members = FastPath_members,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT, "_fastpath",
    "The sandbox's system-call and page-fault entries in C (fastpath.c, faultpath.c).", -1, NULL, NULL, NULL, NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&FastPathType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "FastPath", (PyObject *)&FastPathType) < 0
            || faultpath_add_type(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
