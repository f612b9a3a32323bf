#include "encoder_kernels.h"
