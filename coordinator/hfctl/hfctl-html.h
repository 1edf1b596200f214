/* SPDX-License-Identifier: MIT
 *
 * The HTML of "hfctl report": one self-contained page (inline CSS, inline
 * SVG charts drawn here, no script, nothing fetched from the network) with
 * the job's compatibility matrix, benchmark charts, cross-backend
 * comparison and environments.  Every text from the coordinator is escaped
 * for HTML.  Pure: renders into a buffer, prints nothing.
 */
#ifndef HFCTL_HTML_H
#define HFCTL_HTML_H

#include "hf_proto.h"
#include "hf_util.h"

/* Appends s to out with & < > " ' escaped (for text and attribute values). */
void hfctl_html_escape(struct hf_buf *out, const char *s);

/* Renders the report page of r into out; generated_at (unix seconds) is
 * printed in its footer. */
void hfctl_html_report(const Hf__ReportReply *r, double generated_at, struct hf_buf *out);

#endif
