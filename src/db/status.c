/*
 * status.c - names of status codes and metrics, and the library version.
 */
#include "util/util.h"

int rv_libversion_number(void) { return RV_VERSION_NUMBER; }

const char *rv_status_str(rv_status st)
{
	switch (st) {
	case RV_OK: return "RV_OK: success";
	case RV_ERROR: return "RV_ERROR: error";
	case RV_ENOMEM: return "RV_ENOMEM: out of memory";
	case RV_EINVAL: return "RV_EINVAL: invalid argument";
	case RV_ENOTFOUND: return "RV_ENOTFOUND: not found";
	case RV_ECORRUPT: return "RV_ECORRUPT: file is corrupt";
	case RV_EVERSION: return "RV_EVERSION: file needs a newer ruvector";
	case RV_EBUFS: return "RV_EBUFS: buffer too small";
	case RV_EIO: return "RV_EIO: input/output error";
	case RV_EBUSY: return "RV_EBUSY: file is locked by another writer";
	case RV_EREADONLY: return "RV_EREADONLY: handle is read-only";
	}
	return "unknown status";
}

const char *rv_metric_name(rv_metric m)
{
	switch (m) {
	case RV_METRIC_L2: return "l2";
	case RV_METRIC_COSINE: return "cosine";
	case RV_METRIC_IP: return "ip";
	}
	return "unknown";
}
