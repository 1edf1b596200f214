/* SPDX-License-Identifier: MIT
 *
 * The bytes of nng's SP wire that hfleet speaks itself (docs/protocol.md,
 * "Connections"): the 8-byte header each end sends first, the protocol
 * numbers of REQ and REP, and the request id's end-of-backtrace bit.  One
 * definition for the worker's client (hf_spclient.c), the coordinator's
 * server (hf_spconn.c), the TLS probe (hf_tls.c) and the benchmark's
 * simulated fleet (bench/sp-client.c), so that they cannot drift apart.
 * Constants only: any thread.
 */
#ifndef HF_SPWIRE_H
#define HF_SPWIRE_H

#include <stdint.h>

#define HF_SP_HEADER_LEN 8
#define HF_SP_PROTO_REQ 0x0030
#define HF_SP_PROTO_REP 0x0031
/* Set in the last word of a request's backtrace: the request id itself
 * (the words before it are the hops of devices, which we never are). */
#define HF_SP_ID_END 0x80000000u

/* The header: a zero byte, "SP", version 0, the sender's protocol number
 * (big-endian) and two reserved zero bytes.  Static storage: each is
 * written straight from here. */
extern const uint8_t hf_sp_req_header[HF_SP_HEADER_LEN];
extern const uint8_t hf_sp_rep_header[HF_SP_HEADER_LEN];

#endif
