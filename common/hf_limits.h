/* SPDX-License-Identifier: MIT
 *
 * Every limit of the wire protocol, in one place: the longest string, the
 * most entries of a repeated field, the range of every number and the
 * alphabet of ids that a message may carry, and the largest encoded
 * message of each type.  common/hf_validate.c enforces them on every
 * received message (a message that breaks one is refused whole, with
 * ERR_BAD_REQUEST naming the field and the limit); docs/protocol.md
 * ("Limits") lists them for people.  The values are generous to real use:
 * each notes what the worker, the runner or hfctl really send.
 *
 * Constants only; no state.
 */
#ifndef HF_LIMITS_H
#define HF_LIMITS_H

#include <stdint.h>

/* ---- ids: 1 to HF_ID_MAX of [A-Za-z0-9._:-] ---- */

/* Request ids and model types. */
#define HF_ID_MAX 128
/* Worker ids (a host name by default): the coordinator keeps them in
 * 128-byte records. */
#define HF_WORKER_ID_MAX 127

/* ---- string lengths, in bytes (all strings: valid UTF-8, no NUL) ---- */

#define HF_HOSTNAME_MAX 255        /* HOST_NAME_MAX is 64 on Linux; FQDNs up to 253 */
#define HF_VERSION_MAX 128         /* software_version, runtime versions */
#define HF_NAME_MAX 256            /* device, CPU model, runtime and job names */
#define HF_ARCH_MAX 128            /* device arch ("sm_90", "gfx942"), CPU arch */
#define HF_DRIVER_MAX 128          /* driver / runtime versions (the worker keeps 64) */
#define HF_UUID_MAX 128            /* "GPU-...", "MIG-..." (the worker keeps 96) */
#define HF_LABEL_KEY_MAX 64        /* labels and device attributes (the worker keeps 32) */
#define HF_LABEL_VALUE_MAX 256     /* (the worker keeps 96 for attributes) */
#define HF_DETAIL_MAX 1024         /* runtime details, backend reasons, health details */
#define HF_LIBRARY_MAX 1024        /* a vendor library path */
#define HF_CPU_FLAG_MAX 32         /* one ISA flag name */
#define HF_MODEL_ID_MAX 256        /* a Hub id "org/name" (the Hub allows 96 + 96) */
#define HF_REASON_MAX 2048         /* result reasons, weights (the worker cuts at 1024) */
#define HF_JSON_MAX (256 * 1024)   /* metrics_json, env_json (the runner's limit is 64 KiB) */
#define HF_LOG_EXCERPT_MAX (16 * 1024) /* 4 KiB of output + 4 KiB of traceback, and framing */
#define HF_TRIGGER_MAX 32          /* register | periodic | coordinator */
#define HF_FAMILY_MAX 64           /* an architecture family name */
#define HF_SUITE_MAX 64            /* a registry suite name (REGISTRY_SUITE_MAX) */
#define HF_PRECISION_MAX 16        /* fp32 fp16 bf16 int8 */
#define HF_MODE_MAX 16             /* eager cuda-graph compile */
#define HF_SUBMITTER_MAX 256
#define HF_CC_MAX 16               /* a compute capability "8.0" */
#define HF_GFX_MAX 32              /* a gfx target "gfx942" */
#define HF_RUNTIME_REQ_MAX 256     /* "transformers>=5.0" */
#define HF_MESSAGE_MAX 4096        /* Error.message and other reply texts */
#define HF_TOKEN_MAX 128           /* Envelope.token: "hft_" + 12 hex + "_" + 43 base64url = 60 */
#define HF_ROLE_MAX 16             /* viewer | submitter | admin | worker */
#define HF_REPLY_TEXT_MAX (64 * 1024) /* texts of replies to hfctl (reasons, notes, metrics) */
#define HF_POLL_HOLD_MAX_MS 60000    /* Poll.hold_ms (the coordinator holds at most 30 s) */
#define HF_JOB_STATE_MAX 16        /* JobListRequest.state: running | done | cancelled */

/* ---- counts of repeated fields ---- */

#define HF_MAX_DEVICES 128         /* devices of one worker (the worker's HW_MAX_DEVICES) */
#define HF_MAX_DEVICE_ATTRS 16     /* attributes of one device (the worker sends up to 8) */
#define HF_MAX_LABELS 64           /* labels of a worker, or required by a job */
#define HF_MAX_RUNTIMES 64         /* runtimes a worker reports (about 10 today) */
#define HF_MAX_BACKENDS 16         /* backend statuses (the worker sends all 6) */
#define HF_MAX_CPU_FLAGS 64        /* ISA flags (the worker sends at most 16) */
#define HF_MAX_CACHED_MODELS 4096  /* Hub ids in a worker's cache (HF_CACHE_MAX_MODELS) */
#define HF_MAX_RUNNING 4096        /* tasks a worker runs at once (leases it renews) */
#define HF_MAX_FREE HF_MAX_DEVICES /* free-slot entries of a poll: one per device */
#define HF_MAX_TELEMETRY HF_MAX_DEVICES /* telemetry entries of a poll: one per device */
#define HF_MAX_RESULTS 256         /* results of one batch (the worker's SESSION_BATCH_MAX) */
#define HF_MAX_HEALTH_RESULTS HF_MAX_DEVICES /* health results of one report */
#define HF_MAX_SUBMIT_MODELS 4096  /* models named by one submit */
#define HF_MAX_SUBMIT_FAMILIES 16  /* families (11 exist) */
#define HF_MAX_SUBMIT_BACKENDS 16  /* backends (6 exist) */
#define HF_MAX_SUBMIT_KINDS 8      /* task kinds (2 exist) */
#define HF_MAX_SUBMIT_BATCH_SIZES 64
#define HF_MAX_SUBMIT_PRECISIONS 8 /* precisions (4 exist) */
#define HF_MAX_SUBMIT_MODES 4      /* benchmark modes (3 exist) */
#define HF_MAX_SUBMIT_SEQ_LENS 16
#define HF_MAX_SUBMIT_GFX 32       /* gfx targets a job accepts */
#define HF_MAX_SUBMIT_RUNTIMES 32  /* runtimes a job requires */
#define HF_MAX_DEVICES_PER_TASK 16 /* devices of one task (MATCH_MAX_DEVICES) */
#define HF_MAX_ASSIGNMENTS 4096    /* assignments of one poll reply */
/* DeviceFit entries of an ExplainReply or an ERR_UNSATISFIABLE Error: the
 * coordinator lists at most this many workers/devices and counts the rest
 * (fits_omitted, unfit_omitted); each names at most HF_MAX_UNMET unmet
 * requirements (MATCH_MAX_UNMET) of at most HF_UNMET_MAX bytes. */
#define HF_MAX_DEVICE_FITS 32
#define HF_MAX_UNMET 16
#define HF_UNMET_MAX 192
#define HF_FIT_STATE_MAX 16        /* DeviceFit.state: disconnected, unfit, ... */
#define HF_MAX_UNKNOWN_FIELDS 64   /* fields of newer protocol revisions, skipped, per message */
#define HF_MAX_FILTER_VALUES 256  /* values of one filter of a ResultsRequest */
#define HF_MAX_NESTING 8           /* sub-message depth (the protocol's deepest is 4) */

/* What a worker's description (labels, devices, runtimes, backend
 * statuses, CPU, host name, versions) may encode to, in bytes.  The
 * worker's own buffers allow ~200 KiB (128 devices with every string
 * full); a real worker with 8 GPUs needs ~3 KiB.  How many workers the
 * coordinator remembers is its setting coordinator.max_workers. */
#define HF_MAX_WORKER_DESCRIPTION (256 * 1024)

/* ---- numeric ranges ---- */

#define HF_DEVICE_INDEX_MAX 4095
#define HF_SLOTS_MAX 256           /* tasks one device runs at once (devices.slots) */
/* Tasks a worker may hold leased ahead on a device, per slot of it (the
 * coordinator grants no more; docs/protocol.md, "Tasks leased ahead").
 * Four keep an 8-slot device's queue from running dry while its refill is
 * in flight when tasks are a few ms long and half of them benchmarks, which
 * run one at a time; a queue is a device's work no other worker can take
 * until it runs, so not more. */
#define HF_AHEAD_PER_SLOT 4
#define HF_ATTEMPT_MAX 1000000     /* attempts are 1, 2, ...; retries are at most 20 */
#define HF_TASK_ID_MAX INT64_MAX   /* task and job ids are PostgreSQL bigints */
#define HF_MEMORY_MAX INT64_MAX    /* bytes, stored as bigint */
#define HF_TIMEOUT_S_MAX (7 * 24 * 3600) /* hfctl allows 24 h */
#define HF_ITERATIONS_MAX 1000000
#define HF_WARMUP_MAX 1000000
#define HF_BATCH_SIZE_MAX 4096
#define HF_SEQ_LEN_MAX 1048576
#define HF_PRIORITY_MIN (-1000)
#define HF_PRIORITY_MAX 1000
#define HF_MAX_RETRIES_MAX 20
#define HF_FLAKY_RERUNS_MAX 10
#define HF_MAX_RUNNING_CAP 100000  /* SubmitRequest.max_running */
#define HF_JOB_LIST_MAX 100000     /* JobListRequest.limit */
#define HF_AUDIT_LIST_MAX 100000   /* AuditRequest.limit */
#define HF_HISTORY_LIMIT_MAX 10000 /* HistoryRequest.limit */
/* CompareRequest.threshold: a fraction above 0 (1.0 is 100 % slower). */
#define HF_COMPARE_THRESHOLD_MAX 10.0
#define HF_CPU_COUNT_MAX 1000000   /* sockets, cores, threads, NUMA nodes */
/* Timestamps (unix seconds): 1970-01-01 .. 2200-01-01, finite.  A worker
 * whose clock is wrong (a board that booted without a real-time clock
 * says 1970) still reports its results: the times are the worker's claim,
 * and the coordinator keeps its own. */
#define HF_TIME_MIN 0.0
#define HF_TIME_MAX 7258118400.0
#define HF_DURATION_MAX (366.0 * 24 * 3600) /* seconds */
/* Telemetry readings: finite, negative meaning "not available". */
#define HF_READING_MAX 1.0e7
#define HF_READING_MIN (-1.0)

/* ---- the size of the coordinator's replies to reads ----
 *
 * A read reply holds rows up to about HF_READ_REPLY_BYTES of text; the
 * rest is on a next page (ResultsReply.next_offset) or left out, and the
 * reply says so (CompareReply.total, HistoryReply.truncated,
 * ReportReply.total_tasks).  One row is always sent: the largest (a
 * result with 256 KiB of metrics) fits hfctl's 64 MiB receive limit. */
#define HF_READ_REPLY_BYTES (8u << 20)
#define HF_RESULTS_PAGE_ROWS 2000  /* rows of one ResultsReply page */
#define HF_LOGS_ATTEMPTS_MAX 64    /* attempts of one LogsReply (newest first) */
#define HF_COMPARE_ROWS_MAX 20000  /* rows of one CompareReply (regressions first) */
#define HF_REPORT_TASKS_MAX 20000  /* tasks of one ReportReply */

/* ---- encoded sizes (the nng message body), per message type ---- */

#define HF_MAX_REGISTER_BYTES (4u << 20)
#define HF_MAX_POLL_BYTES (256u << 10)
#define HF_MAX_RESULTS_BYTES (8u << 20)  /* the worker sends up to 1 MiB plus one result */
#define HF_MAX_HEALTH_REPORT_BYTES (1u << 20)
#define HF_MAX_CONTROL_REQUEST_BYTES (2u << 20) /* a submit naming 4096 models */
/* The nng receive limits of the coordinator's ports: the largest message
 * each port legitimately receives (a longer one is dropped by nng, which
 * closes that connection). */
#define HF_WORKER_PORT_RECV_MAX HF_MAX_RESULTS_BYTES
#define HF_CONTROL_PORT_RECV_MAX HF_MAX_CONTROL_REQUEST_BYTES

#endif
