/* SPDX-License-Identifier: MIT
 *
 * Apple MPS (PyTorch's Metal Performance Shaders backend): the Metal device
 * of an Apple Silicon Mac.  The detection exists only in a macOS build
 * (hw-mps.c, behind __APPLE__): on every other system the backend reports
 * itself absent with the reason HW_MPS_ABSENT_REASON and offers nothing.
 */
#ifndef HW_MPS_H
#define HW_MPS_H

#include "hw-inventory.h"

#define HW_MPS_ABSENT_REASON "Apple MPS is only available on macOS"

/* Adds mps:0 when there is a Metal device, and fills st.  Returns 0. */
int hw_mps_probe(struct hw_inventory *inv, struct hw_backend_status *st);

#endif
