/* The page-fault entry in C: a first touch of anonymous memory is mapped without Python.
 *
 * Why this exists: nearly every fault a program takes is the first touch of a page of
 * anonymous memory (heap, stack, bss, mmap), and through ctypes each one paid a Python
 * callback, three ctypes calls to read the exception state and the Python ladder's frame
 * allocation (issue 17: 6.6 us a fault, qemu-user 2.3). This UC_HOOK_INTR hook (the
 * engine's only exception hook; sandbox/fastpath.py installs it) handles exactly the case
 * `demand_zero_fault` in sandbox/mm/fault.py handles, and hands everything else to Python
 * through `entry(intno)`, as the ctypes hook did:
 *
 *   1. the exception is a #PF; the saved context (uc_context_save: CR2, CR3, the error code)
 *      says where and what access (read, write, fetch);
 *   2. the walk from CR3 through guest RAM reaches a leaf table, and the leaf entry is empty
 *      (not-present and never used): no table is created here;
 *   3. with the GIL held, the address space whose PML4 is CR3 (`spaces`, kept by the frame
 *      allocator) has no fault policy and no fault listener (`fault_policies`, `on_fault`),
 *      the allocator has no resident cap (`limit`: Python checks it at every allocation),
 *      and the region its VmaTree last found (`regions._cache`, which `VmaTree.find` returns
 *      first whenever it contains the address, and which every change of the tree resets)
 *      contains the address, is anonymous, has 4 KiB pages and allows the access
 *      (`prot_allows`): the very region Python's ladder would find;
 *   4. a frame is taken from the reserve: frames the allocator handed over in one run
 *      (`fill`), zero, with reference count 1, not counted in `frames.used` until mapped
 *      here. The entry is written with the flags Python writes for the region's protection
 *      (`leaf_flags`, from pagetable.user_pte_flags), the table's live count, the space's
 *      "demand-zero" count and the allocator's used/peak counts move by one, as
 *      `PageTable.fill_slot`, `demand_zero_fault` and `FrameAllocator.alloc` move them;
 *   5. QEMU's "exception in flight" field is reset (machine.py's module doc says why) and
 *      the context restored: the instruction runs again and finds its page.
 *
 * Every test before the first change; the changes are made only once none can fail, so a
 * fault either is handled whole here or reaches Python untouched. When the reserve is empty
 * `refill()` (Python, GIL held) may fill it; when it will not (a resident cap, RAM nearly
 * gone) faults go to Python, which asks again after REFILL_BACKOFF of them.
 *
 * Only empty entries are ever written: a software TLB of present translations (uaccess)
 * never holds one. Nothing is flushed: QEMU caches no translation that failed. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "structmember.h"

#include "faultpath.h"

#define EXC_PF 14                        /* #PF, Intel SDM vol. 3 table 6-1 */
#define PF_PRESENT (1u << 0)             /* #PF error code: a protection violation */
#define PF_WRITE (1u << 1)
#define PF_INSTR (1u << 4)
#define PTE_PRESENT 1ull                 /* Intel SDM vol. 3 §4.5 */
#define PTE_HUGE (1ull << 7)
#define PTE_ADDR_MASK 0x000FFFFFFFFFF000ull
#define PAGE_SHIFT 12
#define PAGE_SIZE 4096ull
#define TABLE_INDEX_MASK 511
#define USER_END 0x0000800000000000ull   /* sandbox/mm: the user half */
#define PROT_READ 1                      /* man 2 mmap; Access values equal these */
#define PROT_WRITE 2
#define PROT_EXEC 4
#define NPROT 8
#define NO_SLOT UINT64_MAX
#define REFILL_BACKOFF 64                /* faults sent to Python after a refused refill */

typedef int (*context_fn)(void *uc, void *context);
typedef int (*emu_stop_fn)(void *uc);
typedef int (*hook_add_fn)(void *uc, size_t *hh, int type, void *callback, void *user_data,
                           uint64_t begin, uint64_t end, ...);
typedef int (*hook_del_fn)(void *uc, size_t hh);

typedef struct {
    PyObject_HEAD
    void *uc;
    context_fn save, restore;
    emu_stop_fn emu_stop;
    hook_del_fn hook_del;
    size_t hook;
    int hooked;
    PyObject *entry;            /* entry(intno): every exception not handled here */
    int enabled;                /* 0 until start(); 0: every exception goes to Python */
    uint8_t *context;           /* a uc_context kept alive by the Python side */
    Py_ssize_t off_cr2, off_cr3, off_error, off_old;
    uint64_t *ram;              /* guest RAM (the machine's buffer, alive while hooked) */
    uint64_t ram_size;
    PyObject *spaces;           /* dict: PML4 physical address -> AddressSpace */
    PyObject *frames;           /* the FrameAllocator: used / peak_used */
    PyObject *refill;           /* refill(): may call fill() (GIL held) */
    PyObject *kind;             /* the fault_counts key: "demand-zero" */
    uint64_t leaf_flags[NPROT]; /* leaf-entry flags per protection */
    uint64_t next, end;         /* the reserve: frames [next, end) */
    int backoff;                /* faults left before refill() is asked again */
    PyObject *region;           /* the last region decoded (records never change) */
    uint64_t region_start, region_end;
    int region_prot, region_anonymous;
    unsigned long long handled; /* faults handled here */
} FaultPath;

static PyObject *s_fault_policies, *s_on_fault, *s_regions, *s_cache, *s_pagetable, *s_live,
    *s_fault_counts, *s_used, *s_peak_used, *s_limit, *s_start, *s_end, *s_prot, *s_file, *s_page_size;

/* -- the exception and the walk ------------------------------------------------------------ */

static uint64_t load64(const uint8_t *p) { uint64_t v; memcpy(&v, p, sizeof v); return v; }
static int32_t load32(const uint8_t *p) { int32_t v; memcpy(&v, p, sizeof v); return v; }

/* The physical address of `va`'s entry in its leaf table (PT), walking from `cr3` through
 * present, non-huge entries; NO_SLOT if a table is missing or outside RAM. */
static uint64_t leaf_slot(const FaultPath *fp, uint64_t cr3, uint64_t va) {
    uint64_t table = cr3 & PTE_ADDR_MASK;
    for (int shift = 39; shift > PAGE_SHIFT; shift -= 9) {
        if (table > fp->ram_size - PAGE_SIZE)
            return NO_SLOT;
        uint64_t entry = fp->ram[(table >> 3) + ((va >> shift) & TABLE_INDEX_MASK)];
        if (!(entry & PTE_PRESENT) || entry & PTE_HUGE)
            return NO_SLOT;
        table = entry & PTE_ADDR_MASK;
    }
    if (table > fp->ram_size - PAGE_SIZE)
        return NO_SLOT;
    return table + (((va >> PAGE_SHIFT) & TABLE_INDEX_MASK) << 3);
}

/* x86 semantics, as vma.prot_allows: anything but PROT_NONE reads; write and exec checked. */
static int prot_allows(int prot, int access) {
    return prot != 0 && !(access & ~prot & (PROT_WRITE | PROT_EXEC));
}

/* -- with the GIL: Python's view of the fault --------------------------------------------- */

/* 1 if `obj.name` is truthy (on_fault: not None), 0 if not, -1 on error. */
static int attr_set(PyObject *obj, PyObject *name, int none_test) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    int result = none_test ? value != Py_None : PyObject_IsTrue(value);
    Py_DECREF(value);
    return result;
}

static int u64_attr(PyObject *obj, PyObject *name, uint64_t *out) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    *out = PyLong_AsUnsignedLongLong(value);
    Py_DECREF(value);
    return *out == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

/* Decode a region record once: its bounds, protection, and whether it is what
 * demand_zero_fault maps (no file, 4 KiB pages). */
static int decode_region(FaultPath *fp, PyObject *region) {
    uint64_t start, end, prot, page_size;
    if (u64_attr(region, s_start, &start) || u64_attr(region, s_end, &end) || u64_attr(region, s_prot, &prot)
            || u64_attr(region, s_page_size, &page_size))
        return -1;
    int has_file = attr_set(region, s_file, 1);
    if (has_file < 0)
        return -1;
    Py_INCREF(region);
    Py_XSETREF(fp->region, region);
    fp->region_start = start;
    fp->region_end = end;
    fp->region_prot = (int)(prot & (NPROT - 1));
    fp->region_anonymous = !has_file && page_size == PAGE_SIZE && prot < NPROT;
    return 0;
}

/* The leaf flags for `va` if the space's cached region is the one Python would find and it
 * allows a demand-zero mapping for `access`; 0 if not, -1 on error. */
static int region_flags(FaultPath *fp, PyObject *space, uint64_t va, int access, uint64_t *flags) {
    PyObject *regions = PyObject_GetAttr(space, s_regions);
    if (regions == NULL)
        return -1;
    PyObject *region = PyObject_GetAttr(regions, s_cache);
    Py_DECREF(regions);
    if (region == NULL)
        return -1;
    int result = 0;
    if (region != Py_None && (region == fp->region || decode_region(fp, region) == 0))
        result = fp->region_start <= va && va < fp->region_end && fp->region_anonymous
                 && prot_allows(fp->region_prot, access);
    else if (region != Py_None)
        result = -1;
    Py_DECREF(region);
    *flags = fp->leaf_flags[fp->region_prot];
    return result;
}

/* `live`'s count for `table` plus one (a new reference), or NULL if the table is not one
 * of this page table's (not in `live`) or on error. */
static PyObject *live_plus_one(PyObject *live, PyObject *key) {
    PyObject *count = PyDict_GetItemWithError(live, key);  /* borrowed */
    if (count == NULL || !PyLong_CheckExact(count))
        return NULL;
    long n = PyLong_AsLong(count);
    return n < 0 ? NULL : PyLong_FromLong(n + 1);
}

/* `counts[key] + 1` (a new reference; a missing key counts 0), or NULL on error. */
static PyObject *count_plus_one(PyObject *counts, PyObject *key) {
    PyObject *old = PyDict_GetItemWithError(counts, key);  /* borrowed */
    if (old == NULL && PyErr_Occurred())
        return NULL;
    long n = old == NULL ? 0 : PyLong_AsLong(old);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(n + 1);
}

/* A frame of the reserve is there, refilling it if it is empty; 0 if none. */
static int reserve_ready(FaultPath *fp) {
    if (fp->next < fp->end)
        return 1;
    if (fp->backoff > 0) {
        fp->backoff--;
        return 0;
    }
    PyObject *result = PyObject_CallNoArgs(fp->refill);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    if (fp->next < fp->end)
        return 1;
    fp->backoff = REFILL_BACKOFF;
    return 0;
}

static int count_and_map(FaultPath *fp, PyObject *space, uint64_t slot, uint64_t flags);

/* The space's tables, counts and the allocator's, then the entry: see the module doc, 3-4.
 * 1 if mapped, 0 if Python must handle the fault, -1 on error (nothing changed either way). */
static int map_page(FaultPath *fp, uint64_t cr3, uint64_t va, int access, uint64_t slot) {
    PyObject *root = PyLong_FromUnsignedLongLong(cr3 & PTE_ADDR_MASK);
    if (root == NULL)
        return -1;
    PyObject *space = PyDict_GetItemWithError(fp->spaces, root);  /* borrowed */
    Py_DECREF(root);
    if (space == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int watched = attr_set(space, s_fault_policies, 0);
    if (watched == 0)
        watched = attr_set(space, s_on_fault, 1);
    if (watched != 0)
        return watched < 0 ? -1 : 0;
    int capped = attr_set(fp->frames, s_limit, 1);  /* a resident cap: alloc() checks each frame */
    if (capped != 0)
        return capped < 0 ? -1 : 0;
    uint64_t flags;
    int ok = region_flags(fp, space, va, access, &flags);
    if (ok <= 0)
        return ok;
    ok = reserve_ready(fp);
    if (ok <= 0)
        return ok;
    return count_and_map(fp, space, slot, flags);
}

/* Move every count the Python path moves, then write the entry. The new values are all
 * made first; of the changes only the first can fail (a new key in fault_counts), the
 * others replace existing keys. 1 if mapped, 0 if Python must see the fault, -1 on error. */
static int count_and_map(FaultPath *fp, PyObject *space, uint64_t slot, uint64_t flags) {
    PyObject *pagetable = PyObject_GetAttr(space, s_pagetable);
    PyObject *live = pagetable == NULL ? NULL : PyObject_GetAttr(pagetable, s_live);
    PyObject *counts = live == NULL ? NULL : PyObject_GetAttr(space, s_fault_counts);
    PyObject *table = counts == NULL ? NULL : PyLong_FromUnsignedLongLong(slot & ~(PAGE_SIZE - 1));
    PyObject *entries = NULL, *faults = NULL, *used = NULL;
    uint64_t used_now = 0, peak = 0;
    int ok = table == NULL ? -1 : !PyDict_Check(live) || !PyDict_Check(counts) ? 0 : 1;
    if (ok == 1 && (entries = live_plus_one(live, table)) == NULL)
        ok = PyErr_Occurred() ? -1 : 0;  /* not a table of this page table's: Python decides */
    if (ok == 1 && ((faults = count_plus_one(counts, fp->kind)) == NULL
                    || u64_attr(fp->frames, s_used, &used_now) || u64_attr(fp->frames, s_peak_used, &peak)
                    || (used = PyLong_FromUnsignedLongLong(used_now + 1)) == NULL
                    || PyDict_SetItem(counts, fp->kind, faults) < 0))
        ok = -1;
    if (ok == 1 && (PyDict_SetItem(live, table, entries) < 0 || PyObject_SetAttr(fp->frames, s_used, used) < 0
                    || (used_now + 1 > peak && PyObject_SetAttr(fp->frames, s_peak_used, used) < 0)))
        ok = -1;  /* cannot happen: existing keys */
    if (ok == 1) {
        fp->ram[slot >> 3] = (fp->next << PAGE_SHIFT) | flags;
        fp->next++;
    }
    Py_XDECREF(used);
    Py_XDECREF(faults);
    Py_XDECREF(entries);
    Py_XDECREF(table);
    Py_XDECREF(counts);
    Py_XDECREF(live);
    Py_XDECREF(pagetable);
    return ok;
}

/* The whole fast path; 1 if the fault was handled here. */
static int map_first_touch(FaultPath *fp) {
    uint8_t *ctx = fp->context;
    if (fp->save(fp->uc, ctx) != 0)
        return 0;
    uint64_t va = load64(ctx + fp->off_cr2), cr3 = load64(ctx + fp->off_cr3);
    uint32_t error = (uint32_t)load32(ctx + fp->off_error);
    if (error & PF_PRESENT || va >= USER_END)
        return 0;
    int access = error & PF_INSTR ? PROT_EXEC : error & PF_WRITE ? PROT_WRITE : PROT_READ;
    PyGILState_STATE gil = PyGILState_Ensure();  /* the tables are Python's: walk them under it */
    uint64_t slot = leaf_slot(fp, cr3, va);
    int done = slot != NO_SLOT && fp->ram[slot >> 3] == 0 ? map_page(fp, cr3, va, access, slot) : 0;
    if (done < 0) {  /* a sandbox bug: reported, and Python handles the fault */
        PyErr_WriteUnraisable(fp->entry);
        done = 0;
    }
    PyGILState_Release(gil);
    if (!done)
        return 0;
    int32_t none = -1;
    memcpy(ctx + fp->off_old, &none, sizeof none);
    fp->restore(fp->uc, ctx);
    fp->handled++;
    return 1;
}

static void call_python(FaultPath *fp, uint32_t intno) {
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *entry = Py_NewRef(fp->entry);  /* alive even if the call closes the hook */
    PyObject *number = PyLong_FromUnsignedLong(intno);
    PyObject *result = number == NULL ? NULL : PyObject_CallOneArg(entry, number);
    Py_XDECREF(number);
    Py_XDECREF(result);
    if (PyErr_Occurred()) {  /* the entry catches everything; this is what escapes it */
        PyErr_WriteUnraisable(entry);
        if (fp->uc != NULL)
            fp->emu_stop(fp->uc);
    }
    Py_DECREF(entry);
    PyGILState_Release(gil);
}

static void intr_hook(void *uc, uint32_t intno, void *user_data) {
    FaultPath *fp = user_data;
    (void)uc;
    if (fp->entry == NULL)
        return;
    if (intno == EXC_PF && fp->enabled && map_first_touch(fp))
        return;
    call_python(fp, intno);
}

/* -- Python's side ------------------------------------------------------------------------ */

/* FaultPath(uc, (context_save, context_restore, emu_stop, hook_add, hook_del), hook_type,
 *           entry): the engine's exception hook, every exception to `entry` until start(). */
static int FaultPath_init(FaultPath *fp, PyObject *args, PyObject *kwds) {
    PyObject *uc, *fns, *entry;
    int hook_type;
    void *fn[5];
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "FaultPath takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOiO", &uc, &fns, &hook_type, &entry))
        return -1;
    if (fp->hooked) {
        PyErr_SetString(PyExc_RuntimeError, "FaultPath is already hooked");
        return -1;
    }
    if (!PyCallable_Check(entry)) {
        PyErr_SetString(PyExc_TypeError, "entry must be callable");
        return -1;
    }
    fp->uc = PyLong_AsVoidPtr(uc);
    if (fp->uc == NULL || fastpath_parse_addresses(fns, fn, 5))
        return -1;
    fp->save = (context_fn)fn[0];
    fp->restore = (context_fn)fn[1];
    fp->emu_stop = (emu_stop_fn)fn[2];
    fp->hook_del = (hook_del_fn)fn[4];
    Py_INCREF(entry);
    Py_XSETREF(fp->entry, entry);
    int err = ((hook_add_fn)fn[3])(fp->uc, &fp->hook, hook_type, (void *)intr_hook, fp, 1, 0);
    if (err) {
        PyErr_Format(PyExc_RuntimeError, "uc_hook_add failed (uc_err %d)", err);
        return -1;
    }
    fp->hooked = 1;
    return 0;
}

static int parse_offsets(FaultPath *fp, PyObject *offsets) {
    Py_ssize_t *out[4] = {&fp->off_cr2, &fp->off_cr3, &fp->off_error, &fp->off_old};
    if (!PyTuple_Check(offsets) || PyTuple_GET_SIZE(offsets) != 4) {
        PyErr_SetString(PyExc_ValueError, "offsets: (cr2, cr3, error_code, old_exception)");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        *out[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(offsets, i));
        if (*out[i] < 0 || *out[i] > (1 << 20)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "context offset %zd out of range", *out[i]);
            return -1;
        }
    }
    return 0;
}

static int parse_flags(FaultPath *fp, PyObject *flags) {
    if (!PyTuple_Check(flags) || PyTuple_GET_SIZE(flags) != NPROT) {
        PyErr_Format(PyExc_ValueError, "leaf_flags: a tuple of %d entries", NPROT);
        return -1;
    }
    for (int i = 0; i < NPROT; i++) {
        fp->leaf_flags[i] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(flags, i));
        if (PyErr_Occurred())
            return -1;
        if (fp->leaf_flags[i] & PTE_ADDR_MASK || !(fp->leaf_flags[i] & PTE_PRESENT)) {
            PyErr_Format(PyExc_ValueError, "leaf flags %#llx: not present, or with address bits",
                         (unsigned long long)fp->leaf_flags[i]);
            return -1;
        }
    }
    return 0;
}

/* start(context, offsets, ram, ram_size, spaces, frames, refill, kind, leaf_flags) */
static PyObject *FaultPath_start(FaultPath *fp, PyObject *args) {
    PyObject *context, *offsets, *ram, *spaces, *frames, *refill, *kind, *flags;
    unsigned long long ram_size;
    if (!PyArg_ParseTuple(args, "OOOKO!OOUO", &context, &offsets, &ram, &ram_size, &PyDict_Type, &spaces,
                          &frames, &refill, &kind, &flags))
        return NULL;
    if (!fp->hooked)
        return PyErr_Format(PyExc_RuntimeError, "the fault hook is closed");
    fp->context = PyLong_AsVoidPtr(context);
    fp->ram = PyLong_AsVoidPtr(ram);
    if (fp->context == NULL || fp->ram == NULL || parse_offsets(fp, offsets) || parse_flags(fp, flags))
        return NULL;
    if (ram_size < PAGE_SIZE || ram_size % PAGE_SIZE || !PyCallable_Check(refill))
        return PyErr_Format(PyExc_ValueError, "bad RAM size or refill");
    fp->ram_size = ram_size;
    Py_INCREF(spaces);
    Py_XSETREF(fp->spaces, spaces);
    Py_INCREF(frames);
    Py_XSETREF(fp->frames, frames);
    Py_INCREF(refill);
    Py_XSETREF(fp->refill, refill);
    Py_INCREF(kind);
    Py_XSETREF(fp->kind, kind);
    fp->enabled = 1;
    Py_RETURN_NONE;
}

/* fill(first, count): frames [first, first + count) are the reserve's; it must be empty. */
static PyObject *FaultPath_fill(FaultPath *fp, PyObject *args) {
    unsigned long long first, count;
    if (!PyArg_ParseTuple(args, "KK", &first, &count))
        return NULL;
    if (fp->next != fp->end)
        return PyErr_Format(PyExc_RuntimeError, "fill: %llu frames are still in the reserve",
                            (unsigned long long)(fp->end - fp->next));
    if (first == 0 || count > fp->ram_size >> PAGE_SHIFT || first > (fp->ram_size >> PAGE_SHIFT) - count)
        return PyErr_Format(PyExc_ValueError, "fill: frames %#llx + %llu outside RAM", first, count);
    fp->next = first;
    fp->end = first + count;
    fp->backoff = 0;
    Py_RETURN_NONE;
}

/* drain(): (first, count) of the frames still in the reserve, which is then empty. */
static PyObject *FaultPath_drain(FaultPath *fp, PyObject *unused) {
    (void)unused;
    PyObject *out = Py_BuildValue("(KK)", (unsigned long long)fp->next, (unsigned long long)(fp->end - fp->next));
    if (out != NULL)
        fp->next = fp->end = 0;
    return out;
}

static PyObject *FaultPath_reserve(FaultPath *fp, void *unused) {
    (void)unused;
    return Py_BuildValue("(KK)", (unsigned long long)fp->next, (unsigned long long)(fp->end - fp->next));
}

static int FaultPath_clear(FaultPath *fp);

static PyObject *FaultPath_close(FaultPath *fp, PyObject *unused) {
    (void)unused;
    if (fp->hooked) {
        fp->hook_del(fp->uc, fp->hook);
        fp->hooked = 0;
        fp->uc = NULL;
    }
    fp->enabled = 0;
    fp->ram = NULL;
    fp->context = NULL;
    FaultPath_clear(fp);
    Py_RETURN_NONE;
}

static int FaultPath_traverse(FaultPath *fp, visitproc visit, void *arg) {
    Py_VISIT(fp->entry);
    Py_VISIT(fp->spaces);
    Py_VISIT(fp->frames);
    Py_VISIT(fp->refill);
    Py_VISIT(fp->kind);
    Py_VISIT(fp->region);
    return 0;
}

static int FaultPath_clear(FaultPath *fp) {
    Py_CLEAR(fp->entry);
    Py_CLEAR(fp->spaces);
    Py_CLEAR(fp->frames);
    Py_CLEAR(fp->refill);
    Py_CLEAR(fp->kind);
    Py_CLEAR(fp->region);
    return 0;
}

/* Never unhooks: the engine may be closed already (it frees its hooks itself). */
static void FaultPath_dealloc(FaultPath *fp) {
    PyObject_GC_UnTrack(fp);
    FaultPath_clear(fp);
    Py_TYPE(fp)->tp_free((PyObject *)fp);
}

static PyMethodDef FaultPath_methods[] = {
    {"start", (PyCFunction)FaultPath_start, METH_VARARGS,
     "start(context, offsets, ram, ram_size, spaces, frames, refill, kind, leaf_flags): handle first touches here."},
    {"fill", (PyCFunction)FaultPath_fill, METH_VARARGS, "fill(first, count): frames for the (empty) reserve."},
    {"drain", (PyCFunction)FaultPath_drain, METH_NOARGS, "(first, count) of the reserve's frames; empties it."},
    {"close", (PyCFunction)FaultPath_close, METH_NOARGS, "Unhook from the engine (before it and its RAM close)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FaultPath_getset[] = {
    {"reserve", (getter)FaultPath_reserve, NULL, "(first, count) of the frames in the reserve.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef FaultPath_members[] = {
    {"enabled", T_INT, offsetof(FaultPath, enabled), 0, "0: every exception goes to Python."},
    {"handled", T_ULONGLONG, offsetof(FaultPath, handled), READONLY, "Faults handled here."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject FaultPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sandbox.native._fastpath.FaultPath",
    .tp_doc = "The engine's exception hook: first touches of anonymous memory mapped in C.",
    .tp_basicsize = sizeof(FaultPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FaultPath_init,
    .tp_dealloc = (destructor)FaultPath_dealloc,
    .tp_traverse = (traverseproc)FaultPath_traverse,
    .tp_clear = (inquiry)FaultPath_clear,
    .tp_methods = FaultPath_methods,
    .tp_members = FaultPath_members,
    .tp_getset = FaultPath_getset,
};

static int intern_names(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_fault_policies, "fault_policies"}, {&s_on_fault, "on_fault"}, {&s_regions, "regions"},
        {&s_cache, "_cache"}, {&s_pagetable, "pagetable"}, {&s_live, "live"}, {&s_fault_counts, "fault_counts"},
        {&s_used, "used"}, {&s_peak_used, "peak_used"}, {&s_limit, "limit"}, {&s_start, "start"}, {&s_end, "end"},
        {&s_prot, "prot"}, {&s_file, "file"}, {&s_page_size, "page_size"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    }
    return 0;
}

int faultpath_add_type(PyObject *module) {
    if (intern_names() < 0 || PyType_Ready(&FaultPathType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "FaultPath", (PyObject *)&FaultPathType);
}
