/* Coord3D: a mutable (x, y, z) integer lattice coordinate.
 *
 * The object layout is fixed: PyObject_HEAD then an ath_coord, because
 * athpy_coord_value() reads the coordinate directly. */
#include "convert.h"

typedef struct {
    PyObject_HEAD ath_coord c;
} AthPyCoord3D;

PyObject *athpy_coord_new(ath_coord c) {
    AthPyCoord3D *self = (AthPyCoord3D *)AthPyCoord3D_Type.tp_alloc(&AthPyCoord3D_Type, 0);
    if (self == NULL) return NULL;
    self->c = c;
    return (PyObject *)self;
}

ath_coord athpy_coord_value(PyObject *obj) { return ((AthPyCoord3D *)obj)->c; }

/* Converts one component (an int or anything with __index__, not float). */
static int coord_component(PyObject *obj, const char *name, int64_t *out) {
    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: expected an int, got NoneType", name);
        return -1;
    }
    return athpy_parse_z(obj, name, out);
}

static int coord_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "y", "z", NULL};
    AthPyCoord3D *self = (AthPyCoord3D *)op;
    PyObject *ox = NULL, *oy = NULL, *oz = NULL;
    ath_coord c = {0, 0, 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO:Coord3D", kwlist, &ox, &oy, &oz))
        return -1;
    if ((ox != NULL && coord_component(ox, "Coord3D.x", &c.x) < 0) ||
        (oy != NULL && coord_component(oy, "Coord3D.y", &c.y) < 0) ||
        (oz != NULL && coord_component(oz, "Coord3D.z", &c.z) < 0))
        return -1;
    self->c = c;
    return 0;
}

static PyObject *coord_get(PyObject *op, void *closure) {
    AthPyCoord3D *self = (AthPyCoord3D *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromLongLong(self->c.x);
    case 1: return PyLong_FromLongLong(self->c.y);
    default: return PyLong_FromLongLong(self->c.z);
    }
}

static int coord_set(PyObject *op, PyObject *value, void *closure) {
    AthPyCoord3D *self = (AthPyCoord3D *)op;
    static const char *const names[3] = {"x", "y", "z"};
    static const char *const argnames[3] = {"Coord3D.x", "Coord3D.y", "Coord3D.z"};
    int which = (int)(intptr_t)closure;
    int64_t v;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "Coord3D.%s cannot be deleted", names[which]);
        return -1;
    }
    if (coord_component(value, argnames[which], &v) < 0) return -1;
    if (which == 0)
        self->c.x = v;
    else if (which == 1)
        self->c.y = v;
    else
        self->c.z = v;
    return 0;
}

static PyObject *coord_to_tuple(PyObject *op, PyObject *noargs) {
    AthPyCoord3D *self = (AthPyCoord3D *)op;
    (void)noargs;
    return Py_BuildValue("(LLL)", (long long)self->c.x, (long long)self->c.y,
                         (long long)self->c.z);
}

static PyObject *coord_repr(PyObject *op) {
    AthPyCoord3D *self = (AthPyCoord3D *)op;
    return PyUnicode_FromFormat("Coord3D(x=%lld, y=%lld, z=%lld)", (long long)self->c.x,
                                (long long)self->c.y, (long long)self->c.z);
}

static Py_hash_t coord_hash(PyObject *op) {
    PyObject *t = coord_to_tuple(op, NULL);
    Py_hash_t h;
    if (t == NULL) return -1;
    h = PyObject_Hash(t);
    Py_DECREF(t);
    return h;
}

static PyObject *coord_richcompare(PyObject *a, PyObject *b, int op) {
    int eq;
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(a, &AthPyCoord3D_Type) ||
        !PyObject_TypeCheck(b, &AthPyCoord3D_Type))
        Py_RETURN_NOTIMPLEMENTED;
    eq = ath_coord_equal(((AthPyCoord3D *)a)->c, ((AthPyCoord3D *)b)->c);
    if (op == Py_NE) eq = !eq;
    return PyBool_FromLong(eq);
}

static PyObject *coord_iter(PyObject *op) {
    PyObject *t = coord_to_tuple(op, NULL), *it;
    if (t == NULL) return NULL;
    it = PyObject_GetIter(t);
    Py_DECREF(t);
    return it;
}

static PyObject *coord_reduce(PyObject *op, PyObject *noargs) {
    PyObject *t = coord_to_tuple(op, noargs), *r;
    if (t == NULL) return NULL;
    r = Py_BuildValue("(ON)", (PyObject *)Py_TYPE(op), t);
    return r;
}

static PyGetSetDef coord_getset[] = {
    {"x", coord_get, coord_set, "x component (int, |x| <= 2**60)", (void *)(intptr_t)0},
    {"y", coord_get, coord_set, "y component (int, |y| <= 2**60)", (void *)(intptr_t)1},
    {"z", coord_get, coord_set, "z component (int, |z| <= 2**60)", (void *)(intptr_t)2},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMethodDef coord_methods[] = {
    {"to_tuple", coord_to_tuple, METH_NOARGS, "to_tuple() -> (x, y, z)"},
    {"__reduce__", coord_reduce, METH_NOARGS, "pickle support"},
    {NULL, NULL, 0, NULL}};

PyTypeObject AthPyCoord3D_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.Coord3D",
    .tp_doc = "Coord3D(x=0, y=0, z=0): integer lattice coordinate (|component| <= 2**60).",
    .tp_basicsize = sizeof(AthPyCoord3D),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = coord_init,
    .tp_repr = coord_repr,
    .tp_hash = coord_hash,
    .tp_richcompare = coord_richcompare,
    .tp_iter = coord_iter,
    .tp_methods = coord_methods,
    .tp_getset = coord_getset,
};
