/* SPDX-License-Identifier: MIT
 *
 * The coordinator's TLS policy (see coord-tls.h).  Anyone who reaches a
 * plain tcp:// port is trusted with whatever that port does, and what
 * crosses it can be read and changed on the way.  So a port open to the
 * network must be tls+tcp://, unless the configuration says tls.mode = off
 * in so many words, and then every start says so in the log.
 *
 *   tls.mode = auto (default)  tls+tcp:// where configured; tcp:// only on
 *                              loopback; ipc:// always
 *   tls.mode = on              every TCP address tls+tcp://, loopback too
 *   tls.mode = off             no TLS at all; tcp:// anywhere, with a warning
 */
#include "coord-tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hf_log.h"

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool coord_url_local(const char *url)
{
	const char *host, *end;
	char buf[256];
	size_t len;

	if (starts(url, "ipc://") || starts(url, "abstract://"))
		return true;
	if (starts(url, "tcp://"))
		host = url + 6;
	else if (starts(url, "tcp4://") || starts(url, "tcp6://"))
		host = url + 7;
	else
		return false;
	/* host:port, [v6]:port; the port is all after the last colon. */
	end = strrchr(host, ':');
	if (!end)
		return false;
	len = (size_t)(end - host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return false; /* "tcp://:7100" is every address */
	memcpy(buf, host, len);
	buf[len] = '\0';
	if (strcmp(buf, "localhost") == 0 || strcmp(buf, "::1") == 0)
		return true;
	/* 127.0.0.0/8, written as a dotted quad. */
	unsigned a, b, c, d;
	char tail;
	return sscanf(buf, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
	       d < 256;
}

static int tls_mode_parse(const char *s, char *mode)
{
	if (strcmp(s, "auto") == 0)
		*mode = 'a';
	else if (strcmp(s, "on") == 0)
		*mode = '1';
	else if (strcmp(s, "off") == 0)
		*mode = '0';
	else
		return -EINVAL;
	return 0;
}

/* Checks one listen address, named by setting; *ret_tls when it is TLS. */
static int listen_check(const char *setting, const char *url, char mode, bool *ret_tls, char *err,
			size_t errlen)
{
	bool tls = hf_tls_url(url);

	*ret_tls = tls;
	if (tls && mode == '0') {
		snprintf(err, errlen, "%s \"%s\" is a TLS address but tls.mode = off", setting, url);
		return -EINVAL;
	}
	if (tls || (coord_url_local(url) && mode != '1'))
		return 0;
	if (starts(url, "ipc://") || starts(url, "abstract://"))
		return 0;
	if (mode == '1') {
		snprintf(err, errlen, "%s \"%s\" is not TLS and tls.mode = on: use tls+tcp://", setting, url);
		return -EINVAL;
	}
	if (mode == 'a') {
		snprintf(err, errlen,
			 "%s \"%s\" can be reached from the network without TLS: use tls+tcp:// with "
			 "tls.cert_file and tls.key_file, listen on 127.0.0.1 or ipc://, or set tls.mode = off "
			 "to accept clear text from the network",
			 setting, url);
		return -EINVAL;
	}
	log_warn("%s \"%s\" accepts clear text from the network (tls.mode = off): anyone who reaches it "
		 "is trusted, and what crosses it can be read and changed; see \"Putting TLS on a fleet\" "
		 "in docs/operations.md",
		 setting, url);
	return 0;
}

int coord_tls_setup(const struct coord_conf *conf, nng_tls_config **ret_cfg, char *err, size_t errlen)
{
	struct hf_tls tls = {
		.ca_file = conf->tls_ca_file,
		.cert_file = conf->tls_cert_file,
		.key_file = conf->tls_key_file,
	};
	bool worker_tls, control_tls;
	char mode;
	int r;

	*ret_cfg = NULL;
	if (tls_mode_parse(conf->tls_mode, &mode) < 0) {
		snprintf(err, errlen, "invalid value \"%s\" for setting \"tls.mode\" (auto, on or off)",
			 conf->tls_mode);
		return -EINVAL;
	}
	if (strcmp(conf->tls_client_auth, "required") == 0) {
		tls.client_auth = true;
	} else if (strcmp(conf->tls_client_auth, "none") != 0) {
		snprintf(err, errlen, "invalid value \"%s\" for setting \"tls.client_auth\" (none or required)",
			 conf->tls_client_auth);
		return -EINVAL;
	}
	r = listen_check("coordinator.worker_listen", conf->worker_listen, mode, &worker_tls, err, errlen);
	if (r == 0)
		r = listen_check("coordinator.control_listen", conf->control_listen, mode, &control_tls, err,
				 errlen);
	if (r < 0 || !(worker_tls || control_tls))
		return r;
	return hf_tls_config_server(&tls, ret_cfg, err, errlen);
}
