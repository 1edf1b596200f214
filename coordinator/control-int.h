/* SPDX-License-Identifier: MIT
 *
 * What the control API's files share (control-api.c, control-fleet.c): one
 * request in flight and the handlers each file answers.  Loop thread only.
 */
#ifndef HF_CONTROL_INT_H
#define HF_CONTROL_INT_H

#include "coordinator.h"
#include "expand.h"

struct control_req {
	struct coord *c;
	nuv_request_t *req;
	Hf__Envelope *env;
	struct coord_principal who;  /* the token's name and role */
	struct job_plan *plan;
	struct match_req *match;   /* handed to the scheduler's job on success */
	char *match_json;
	char *stopping;            /* retry --cancelled: the ids of cancelled tasks still being stopped */
	struct db_op op;
};

void control_req_free(struct control_req *q);

/* The done callback of a read the database layer answers whole: replies
 * with its message, or the error; frees q. */
void control_read_done(struct db_op *op);

/* control-fleet.c: each replies and frees q. */
void handle_explain(struct control_req *q);
void handle_workers(struct control_req *q);
void handle_devices(struct control_req *q);

#endif
