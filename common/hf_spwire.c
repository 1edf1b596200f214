/* SPDX-License-Identifier: MIT
 *
 * The SP headers of hf_spwire.h: the bytes themselves.
 */
#include "hf_spwire.h"

const uint8_t hf_sp_req_header[HF_SP_HEADER_LEN] = { 0, 'S', 'P', 0, HF_SP_PROTO_REQ >> 8, HF_SP_PROTO_REQ & 0xff,
						     0, 0 };
const uint8_t hf_sp_rep_header[HF_SP_HEADER_LEN] = { 0, 'S', 'P', 0, HF_SP_PROTO_REP >> 8, HF_SP_PROTO_REP & 0xff,
						     0, 0 };
