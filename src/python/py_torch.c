/* STUB — replaced by the LibTorch shim loader. */
#include "ath_py.h"

PyMethodDef athpy_torch_methods[] = {{NULL, NULL, 0, NULL}};
