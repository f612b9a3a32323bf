#pragma once
#include <cblas.h>
// Declared by OpenBLAS but not in every cblas.h.
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
char *openblas_get_config(void);
