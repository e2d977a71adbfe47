#include "ruvector.h"
int rv_headertest_cxx();
int rv_headertest_cxx() { rv_open_opts o = RV_OPEN_OPTS_INIT; return (int)o.size; }
