/* SPDX-License-Identifier: MIT
 *
 * Which of the coordinator's listen addresses may go without TLS, and the
 * TLS configuration of those that have it (see coord-tls.c).  Main thread,
 * at start-up.
 */
#ifndef HF_COORD_TLS_H
#define HF_COORD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "coord-conf.h"
#include "hf_tls.h"

/* True when url can be reached only from this host: ipc://, abstract://,
 * or tcp:// on 127.0.0.0/8, ::1 or localhost. */
bool coord_url_local(const char *url);

/* Checks coordinator.worker_listen and control_listen against the tls.*
 * settings and, when one of them is tls+tcp://, loads the certificate and
 * key into *ret_cfg (else *ret_cfg is NULL).  With tls.mode = off it logs
 * a warning for each address open to the network in clear text.  Returns
 * 0, or -EINVAL (-ENOMEM) with a message naming the setting in err. */
int coord_tls_setup(const struct coord_conf *conf, nng_tls_config **ret_cfg, char *err, size_t errlen);

#endif
