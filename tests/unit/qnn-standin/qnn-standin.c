/* SPDX-License-Identifier: MIT
 *
 * A stand-in for a QNN SDK backend library (libQnnHtp.so or libQnnCpu.so,
 * by QNN_STANDIN_PROVIDER and QNN_STANDIN_BACKEND_ID at build time), built by
 * the tests as a shared module and loaded by hf-worker through the same
 * dlopen path as the real one.  It exports QnnInterface_getProviders with
 * one provider whose leading fields (backend id, provider name, API
 * versions) are laid out as in QnnInterface.h; the function table that
 * follows them in the real struct is left empty, as hf-worker never reads
 * it.
 */
#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct {
	uint32_t major, minor, patch;
} Qnn_Version_t;

typedef struct {
	uint32_t backendId;
	const char *providerName;
	struct {
		Qnn_Version_t coreApiVersion;
		Qnn_Version_t backendApiVersion;
	} apiVersion;
	void *table[64]; /* the function table: not used */
} QnnInterface_t;

static const QnnInterface_t provider = {
	.backendId = QNN_STANDIN_BACKEND_ID,
	.providerName = QNN_STANDIN_PROVIDER,
	.apiVersion = { { 2, 22, 0 }, { 5, 27, 0 } },
};
static const QnnInterface_t *providers[] = { &provider };

EXPORT uint64_t QnnInterface_getProviders(const QnnInterface_t ***list, uint32_t *n)
{
	*list = providers;
	*n = 1;
	return 0;
}
