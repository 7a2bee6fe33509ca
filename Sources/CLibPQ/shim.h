#ifndef REPRISE_CLIBPQ_SHIM_H
#define REPRISE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
