/* SPDX-License-Identifier: MIT
 *
 * The local HuggingFace cache: which Hub models have weights on this
 * machine, so the coordinator can prefer this worker for them.  Pure file
 * system reading; no network.  Called from the loop thread at start and on
 * SIGHUP.
 */
#ifndef HF_WORKER_HF_CACHE_H
#define HF_WORKER_HF_CACHE_H

#include <stddef.h>

/* At most this many models are reported. */
#define HF_CACHE_MAX_MODELS 4096

/* The hub cache directory: dir when not empty, else $HF_HUB_CACHE, else
 * $HF_HOME/hub, else $HOME/.cache/huggingface/hub.  Returns a malloc'd
 * path or NULL. */
char *hf_cache_dir(const char *dir);

/* Lists the models cached under hub_dir ("models--ORG--NAME" directories
 * with at least one snapshot) as "ORG/NAME", sorted.  A missing directory
 * is an empty list.  Returns 0 or -ENOMEM; free with hf_cache_free. */
int hf_cache_scan(const char *hub_dir, char ***ret_ids, size_t *ret_n);

/* Adds to *ids (sorted, n_ids long, as hf_cache_scan returns) the models of
 * the weights directories in dirs (runner.weights_dir: ':'-separated), as
 * the runner looks them up: DIR/NAME or DIR/ORG/NAME holding config.json and
 * a checkpoint file.  The list stays sorted without duplicates.  Missing
 * directories add nothing.  Returns 0 or -ENOMEM (the list then holds what
 * it held; *ids may have moved). */
int hf_weights_dirs_scan(const char *dirs, char ***ids, size_t *n_ids);

void hf_cache_free(char **ids, size_t n);

#endif
