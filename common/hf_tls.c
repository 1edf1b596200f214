/* SPDX-License-Identifier: MIT
 *
 * TLS configurations for nng's tls+tcp transport, dialing with them, and
 * the probe that tells a failed TLS handshake from an absent peer (see
 * hf_tls.h).  No state of its own; nng holds a configuration as long as a
 * listener or dialer uses it.
 */
#include "hf_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_nuv.h"
#include "hf_spwire.h"
#include "hf_util.h"

bool hf_tls_url(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0 || strncmp(url, "tls+tcp4://", 11) == 0 ||
	       strncmp(url, "tls+tcp6://", 11) == 0;
}

static bool given(const char *s)
{
	return s && s[0];
}

/* Reads a PEM file named by setting into *ret_pem. */
static int pem_read(const char *setting, const char *path, char **ret_pem, char *err, size_t errlen)
{
	size_t len;
	int r = hf_read_file(path, HF_TLS_FILE_MAX, ret_pem, &len);

	if (r < 0) {
		snprintf(err, errlen, "could not read %s \"%s\": %s", setting, path,
			 r == -EFBIG ? "larger than 1 MiB, not a PEM file" : strerror(-r));
		return r == -ENOMEM ? r : r == -ENOENT ? -ENOENT : -EINVAL;
	}
	if (!strstr(*ret_pem, "-----BEGIN ")) {
		snprintf(err, errlen, "%s \"%s\" is not a PEM file (no \"-----BEGIN\" line)", setting, path);
		free(*ret_pem);
		*ret_pem = NULL;
		return -EINVAL;
	}
	return 0;
}

static int ca_load(nng_tls_config *cfg, const char *path, char *err, size_t errlen)
{
	char *pem = NULL;
	int r = pem_read("the CA file", path, &pem, err, errlen);

	if (r < 0)
		return r;
	r = nng_tls_config_ca_chain(cfg, pem, NULL);
	free(pem);
	if (r != 0) {
		snprintf(err, errlen, "the CA file \"%s\": no usable CA certificate in it (%s)", path,
			 nng_strerror(r));
		return -EINVAL;
	}
	return 0;
}

static int own_cert_load(nng_tls_config *cfg, const struct hf_tls *tls, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL;
	int r = pem_read("the certificate file", tls->cert_file, &cert, err, errlen);

	if (r == 0)
		r = pem_read("the key file", tls->key_file, &key, err, errlen);
	if (r == 0 && nng_tls_config_own_cert(cfg, cert, key, NULL) != 0) {
		snprintf(err, errlen,
			 "the certificate file \"%s\" and the key file \"%s\": not a certificate and "
			 "its unencrypted private key",
			 tls->cert_file, tls->key_file);
		r = -EINVAL;
	}
	free(cert);
	free(key);
	return r;
}

int hf_tls_config_server(const struct hf_tls *tls, nng_tls_config **ret_cfg, char *err, size_t errlen)
{
	nng_tls_config *cfg;
	int r;

	if (!given(tls->cert_file) || !given(tls->key_file)) {
		snprintf(err, errlen, "TLS needs tls.cert_file and tls.key_file (the coordinator's certificate "
				      "and key, PEM)");
		return -EINVAL;
	}
	if (tls->client_auth && !given(tls->ca_file)) {
		snprintf(err, errlen, "tls.client_auth = required needs tls.ca_file (the CA that signs the "
				      "clients' certificates)");
		return -EINVAL;
	}
	r = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
	if (r != 0) {
		snprintf(err, errlen, "could not set up TLS: %s", nng_strerror(r));
		return nuv_errno(r);
	}
	r = own_cert_load(cfg, tls, err, errlen);
	if (r == 0 && tls->client_auth)
		r = ca_load(cfg, tls->ca_file, err, errlen);
	if (r == 0 && nng_tls_config_auth_mode(cfg, tls->client_auth ? NNG_TLS_AUTH_MODE_REQUIRED
								      : NNG_TLS_AUTH_MODE_NONE) != 0) {
		snprintf(err, errlen, "could not set the TLS client authentication mode");
		r = -EINVAL;
	}
	if (r < 0) {
		nng_tls_config_free(cfg);
		return r;
	}
	*ret_cfg = cfg;
	return 0;
}

int hf_tls_config_client(const struct hf_tls *tls, const char *url, nng_tls_config **ret_cfg, char *err,
			 size_t errlen)
{
	nng_tls_config *cfg = NULL;
	nng_url *u = NULL;
	const char *name = tls ? tls->server_name : NULL;
	int r;

	if (!tls || !given(tls->ca_file)) {
		snprintf(err, errlen, "\"%s\" is a TLS address: the CA that signs the coordinator's certificate "
				      "must be given (tls.ca_file, hfctl --ca-file or $HFLEET_CA_FILE)",
			 url);
		return -EINVAL;
	}
	if (given(tls->cert_file) != given(tls->key_file)) {
		snprintf(err, errlen, "a client certificate needs both a certificate file and a key file");
		return -EINVAL;
	}
	if (!given(name)) {
		r = nng_url_parse(&u, url);
		if (r != 0 || !u->u_hostname || !u->u_hostname[0]) {
			snprintf(err, errlen, "invalid coordinator address \"%s\": no host name to verify", url);
			if (u)
				nng_url_free(u);
			return -EINVAL;
		}
		name = u->u_hostname;
	}
	r = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
	if (r != 0) {
		snprintf(err, errlen, "could not set up TLS: %s", nng_strerror(r));
		r = nuv_errno(r);
		goto out;
	}
	r = ca_load(cfg, tls->ca_file, err, errlen);
	if (r == 0 && given(tls->cert_file))
		r = own_cert_load(cfg, tls, err, errlen);
	if (r == 0 && (nng_tls_config_server_name(cfg, name) != 0 ||
		       nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED) != 0)) {
		snprintf(err, errlen, "could not set the TLS server name \"%s\"", name);
		r = -EINVAL;
	}
out:
	if (u)
		nng_url_free(u);
	if (r < 0) {
		if (cfg)
			nng_tls_config_free(cfg);
		return r;
	}
	*ret_cfg = cfg;
	return 0;
}

/* Dials one URL. */
static int dial_one(nng_socket sock, const char *url, const struct hf_tls *tls, char *err, size_t errlen)
{
	nng_tls_config *cfg = NULL;
	nng_dialer d;
	int r;

	r = nuv_errno(nng_dialer_create(&d, sock, url));
	if (r < 0) {
		snprintf(err, errlen, "invalid coordinator address \"%s\"", url);
		return r;
	}
	if (hf_tls_url(url)) {
		r = hf_tls_config_client(tls, url, &cfg, err, errlen);
		if (r < 0) {
			nng_dialer_close(d);
			return r;
		}
		/* The dialer takes its own hold. */
		r = nuv_errno(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg));
		nng_tls_config_free(cfg);
		if (r < 0) {
			snprintf(err, errlen, "could not set up TLS for \"%s\"", url);
			nng_dialer_close(d);
			return r;
		}
	}
	r = nuv_errno(nng_dialer_start(d, NNG_FLAG_NONBLOCK));
	if (r < 0) {
		snprintf(err, errlen, "could not dial \"%s\"", url);
		nng_dialer_close(d);
	}
	return r;
}

int hf_tls_dial(nng_socket sock, const char *urls, const struct hf_tls *tls, char *err, size_t errlen)
{
	char *copy = strdup(urls), *save = NULL;
	int r = -EINVAL;

	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(err, errlen, "no coordinator address in \"%s\"", urls);
	for (char *one = strtok_r(copy, ", ", &save); one; one = strtok_r(NULL, ", ", &save)) {
		r = dial_one(sock, one, tls, err, errlen);
		if (r < 0)
			break;
	}
	free(copy);
	return r;
}

/* Runs one stream operation on aio and waits for it. */
static int aio_run(nng_aio *aio)
{
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

/* Connects to url with cfg and completes the TLS handshake: sends our SP
 * REQ header (the handshake runs with the first bytes sent) and reads the
 * coordinator's (which proves it accepted us).  Returns nng's error. */
static int handshake(const char *url, nng_tls_config *cfg, int timeout_ms)
{
	uint8_t back[HF_SP_HEADER_LEN];
	nng_stream_dialer *d = NULL;
	nng_stream *s = NULL;
	nng_aio *aio = NULL;
	nng_iov iov;
	int rv;

	rv = nng_stream_dialer_alloc(&d, url);
	if (rv == 0)
		rv = nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	if (rv == 0)
		rv = nng_aio_alloc(&aio, NULL, NULL);
	if (rv == 0) {
		nng_aio_set_timeout(aio, timeout_ms);
		nng_stream_dialer_dial(d, aio);
		rv = aio_run(aio);
	}
	if (rv == 0) {
		s = nng_aio_get_output(aio, 0);
		iov.iov_buf = (void *)hf_sp_req_header;
		iov.iov_len = HF_SP_HEADER_LEN;
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_send(s, aio);
		rv = aio_run(aio);
	}
	if (rv == 0) {
		iov.iov_buf = back;
		iov.iov_len = sizeof(back);
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_recv(s, aio);
		rv = aio_run(aio);
	}
	/* Connected, then closed before the coordinator's header: it
	 * refused the handshake (a client certificate it wanted, which it
	 * says by hanging up, not with an alert). */
	if (s && (rv == NNG_ECONNSHUT || rv == NNG_ECONNRESET || rv == NNG_ECLOSED))
		rv = NNG_ECRYPTO;
	if (s) {
		nng_stream_close(s);
		nng_stream_free(s);
	}
	if (aio)
		nng_aio_free(aio);
	if (d)
		nng_stream_dialer_free(d);
	return rv;
}

int hf_tls_probe(const char *url, const struct hf_tls *tls, int timeout_ms, char *why, size_t whylen)
{
	nng_tls_config *cfg = NULL;
	nng_url *u = NULL;
	const char *name;
	int rv;

	if (hf_tls_config_client(tls, url, &cfg, why, whylen) < 0)
		return -EINVAL;
	name = tls->server_name;
	if (!given(name))
		name = nng_url_parse(&u, url) == 0 ? u->u_hostname : "?";
	rv = handshake(url, cfg, timeout_ms);
	if (rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH) {
		/* mbedTLS reports a certificate we refused and one the peer
		 * refused alike: try once more without verifying the peer.
		 * Success means the coordinator's certificate is at fault. */
		if (nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE) == 0 &&
		    handshake(url, cfg, timeout_ms) == 0) {
			snprintf(why, whylen,
				 "TLS: the certificate of \"%s\" was not accepted: not signed by the CA in "
				 "\"%s\", or not issued for the name \"%s\"",
				 url, tls->ca_file, name);
			rv = NNG_EPEERAUTH;
		} else {
			snprintf(why, whylen,
				 "TLS handshake with \"%s\" failed: the coordinator wants a client certificate "
				 "signed by its CA (%s), or it is not a TLS port",
				 url, given(tls->cert_file) ? "ours is not" : "we have none");
			rv = NNG_ECRYPTO;
		}
	} else if (rv == 0) {
		snprintf(why, whylen, "the TLS handshake with \"%s\" succeeded", url);
	} else {
		snprintf(why, whylen, "could not connect to \"%s\": %s", url, nng_strerror(rv));
	}
	if (u)
		nng_url_free(u);
	nng_tls_config_free(cfg);
	return rv == NNG_EPEERAUTH ? -EKEYREJECTED : rv == NNG_ECRYPTO ? -EPROTO : nuv_errno(rv);
}
