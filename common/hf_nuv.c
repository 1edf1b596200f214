/* SPDX-License-Identifier: MIT
 *
 * The nng-to-libuv bridge (see hf_nuv.h): nng's errors and the open-file
 * limit.  The server side is in hf_spserver.c and hf_spconn.c, the client
 * side in hf_spclient.c.  Any thread.
 */
#include "hf_nuv.h"

#include <errno.h>
#include <sys/resource.h>

int nuv_errno(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return -ESHUTDOWN;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
		return -ECONNRESET;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_EPERM:
		return -EPERM;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	case NNG_EPEERAUTH:
		return -EKEYREJECTED;
	case NNG_ECRYPTO:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* ---- file limit ---- */

int nuv_nofile_raise(uint64_t *ret_limit)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	*ret_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	return 0;
}
