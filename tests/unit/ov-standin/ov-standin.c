/* SPDX-License-Identifier: MIT
 *
 * A stand-in for OpenVINO's C library (libopenvino_c.so), built by the
 * tests as a shared module and loaded by hf-worker through the same dlopen
 * path as the real one (hardware.openvino_library set to this module's
 * path).  It exports the functions hw-intel.c uses, with the C signatures of
 * openvino/c/ov_core.h (2023.0 and later), and answers from a scenario file
 * named by the environment variable HFLEET_OV_STANDIN:
 *
 *   version = 2024.4.0-16579-c3152d32c9c-releases/2024/4
 *   create = ok             # or fail: ov_core_create returns GENERAL_ERROR
 *   [GPU.1]                 # one section per device, in the order reported
 *   FULL_DEVICE_NAME = ...  # any property, as text
 *
 * Test code: no threads, bounded tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int ov_status_e;
#define OV_OK 0
#define OV_GENERAL_ERROR (-1)
#define OV_NOT_FOUND (-4)

typedef struct ov_core {
	int magic;
} ov_core_t;

typedef struct {
	char **devices;
	size_t size;
} ov_available_devices_t;

typedef struct {
	const char *buildNumber;
	const char *description;
} ov_version_t;

#define MAX_DEVICES 8
#define MAX_PROPS 8

static struct {
	char version[128];
	int create_fails;
	struct {
		char name[32];
		char keys[MAX_PROPS][64], values[MAX_PROPS][128];
		int n_props;
	} devs[MAX_DEVICES];
	int n_devs;
} sc;

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static void scenario_load(void)
{
	const char *path = getenv("HFLEET_OV_STANDIN");
	char line[512];
	FILE *f;

	memset(&sc, 0, sizeof(sc));
	if (!path || !(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line), *eq;

		if (!*l || *l == '#')
			continue;
		if (*l == '[' && sc.n_devs < MAX_DEVICES) {
			l[strcspn(l, "]")] = '\0';
			snprintf(sc.devs[sc.n_devs++].name, sizeof(sc.devs[0].name), "%s", l + 1);
			continue;
		}
		if (!(eq = strchr(l, '=')))
			continue;
		*eq = '\0';
		char *k = trim(l), *v = trim(eq + 1);
		if (sc.n_devs > 0) {
			int d = sc.n_devs - 1, p = sc.devs[d].n_props;
			if (p < MAX_PROPS) {
				snprintf(sc.devs[d].keys[p], sizeof(sc.devs[d].keys[p]), "%s", k);
				snprintf(sc.devs[d].values[p], sizeof(sc.devs[d].values[p]), "%s", v);
				sc.devs[d].n_props++;
			}
		} else if (strcmp(k, "version") == 0) {
			snprintf(sc.version, sizeof(sc.version), "%s", v);
		} else if (strcmp(k, "create") == 0) {
			sc.create_fails = strcmp(v, "fail") == 0;
		}
	}
	fclose(f);
}

EXPORT ov_status_e ov_core_create(ov_core_t **core)
{
	scenario_load();
	if (sc.create_fails)
		return OV_GENERAL_ERROR;
	*core = calloc(1, sizeof(**core));
	return *core ? OV_OK : OV_GENERAL_ERROR;
}

EXPORT void ov_core_free(ov_core_t *core)
{
	free(core);
}

EXPORT ov_status_e ov_core_get_available_devices(const ov_core_t *core, ov_available_devices_t *list)
{
	(void)core;
	list->size = (size_t)sc.n_devs;
	list->devices = calloc((size_t)sc.n_devs + 1, sizeof(char *));
	if (!list->devices)
		return OV_GENERAL_ERROR;
	for (int i = 0; i < sc.n_devs; i++)
		list->devices[i] = strdup(sc.devs[i].name);
	return OV_OK;
}

EXPORT void ov_available_devices_free(ov_available_devices_t *list)
{
	for (size_t i = 0; list->devices && i < list->size; i++)
		free(list->devices[i]);
	free(list->devices);
	list->devices = NULL;
	list->size = 0;
}

EXPORT ov_status_e ov_core_get_property(const ov_core_t *core, const char *device, const char *key,
					char **value)
{
	(void)core;
	for (int i = 0; i < sc.n_devs; i++) {
		if (strcmp(sc.devs[i].name, device) != 0)
			continue;
		for (int p = 0; p < sc.devs[i].n_props; p++) {
			if (strcmp(sc.devs[i].keys[p], key) == 0) {
				*value = strdup(sc.devs[i].values[p]);
				return *value ? OV_OK : OV_GENERAL_ERROR;
			}
		}
	}
	return OV_NOT_FOUND;
}

EXPORT void ov_free(const char *s)
{
	free((char *)s);
}

EXPORT ov_status_e ov_get_openvino_version(ov_version_t *v)
{
	v->buildNumber = strdup(sc.version);
	v->description = strdup("OpenVINO Runtime (stand-in)");
	return OV_OK;
}

EXPORT void ov_version_free(ov_version_t *v)
{
	free((char *)v->buildNumber);
	free((char *)v->description);
	v->buildNumber = v->description = NULL;
}

EXPORT const char *ov_get_error_info(ov_status_e st)
{
	return st == OV_GENERAL_ERROR ? "General error" : "Unknown error";
}
