#include "ruvector.h"
int rv_headertest_c(void);
int rv_headertest_c(void) { return RV_VERSION_NUMBER; }
