#include "decode_kernels.h"
