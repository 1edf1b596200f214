/* SPDX-License-Identifier: MIT
 *
 * TLS for hfleet's connections: nng's tls+tcp:// transport (mbedTLS in
 * Debian's libnng).  This module turns the settings (PEM files named in
 * the configuration) into nng TLS configurations for the coordinator's
 * listeners and for the dialers of hf-worker and hfctl, dials a REQ
 * socket with one, and, when a call fails, finds out whether TLS is why
 * (hf_tls_probe) so that the message can say so.
 *
 * A client always verifies the coordinator's certificate (chain to
 * ca_file, name against server_name or the URL's host).  A server
 * presents cert_file/key_file and, with client_auth required, demands a
 * client certificate that chains to ca_file.
 *
 * Errors are negative errno values with a message in err naming the
 * setting or file at fault.  Called at start-up and by hfctl; any thread.
 */
#ifndef HF_TLS_H
#define HF_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/* PEM files are small; a bigger one is a mistake, not a certificate. */
#define HF_TLS_FILE_MAX ((size_t)1 << 20)

struct hf_tls {
	const char *ca_file;     /* PEM: the CA(s) that sign the peer's certificate */
	const char *cert_file;   /* PEM: our certificate (and its chain) */
	const char *key_file;    /* PEM: its unencrypted private key */
	const char *server_name; /* client: the name to verify; NULL/"" = the URL's host */
	bool client_auth;        /* server: require a client certificate signed by ca_file */
};

/* True for a URL that needs TLS: tls+tcp://, tls+tcp4://, tls+tcp6://. */
bool hf_tls_url(const char *url);

/* A listener's configuration.  cert_file and key_file are required;
 * ca_file too with client_auth.  Returns 0, -EINVAL, -ENOENT, -ENOMEM. */
int hf_tls_config_server(const struct hf_tls *tls, nng_tls_config **ret_cfg, char *err, size_t errlen);

/* A dialer's configuration for url: ca_file is required (the coordinator
 * is always verified); cert_file/key_file, when given, are presented as a
 * client certificate. */
int hf_tls_config_client(const struct hf_tls *tls, const char *url, nng_tls_config **ret_cfg, char *err,
			 size_t errlen);

/* Starts a non-blocking dial of sock to each URL of a comma-separated list,
 * with a client TLS configuration for the tls+tcp ones (tls may be NULL
 * when none is).  Returns 0 or a negative errno with a message in err. */
int hf_tls_dial(nng_socket sock, const char *urls, const struct hf_tls *tls, char *err, size_t errlen);

/* Connects to url once, as a client with tls, and completes the TLS
 * handshake, within timeout_ms.  Returns 0 (the handshake succeeded),
 * -EKEYREJECTED (a certificate was not accepted: ours by the peer or the
 * peer's by us), -EPROTO (the handshake failed: not a TLS peer, no
 * common cipher...), or the transport's error; why says which in words. */
int hf_tls_probe(const char *url, const struct hf_tls *tls, int timeout_ms, char *why, size_t whylen);

#endif
