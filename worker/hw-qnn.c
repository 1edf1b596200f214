/* SPDX-License-Identifier: MIT
 *
 * The QNN HTP backend: SDK layout, the backend library loaded with dlopen,
 * the FastRPC device nodes and the SoC's HTP version (see hw-qnn.h).
 */
#include "hw-qnn.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hw-util.h"

/* ---- the part of the QNN C API used here (QnnInterface.h, QnnTypes.h) ---- */

typedef uint64_t Qnn_ErrorHandle_t; /* QNN_SUCCESS is 0 */

typedef struct {
	uint32_t major, minor, patch;
} Qnn_Version_t;

/* The leading, version-independent part of QnnInterface_t; the function
 * table that follows it is not touched. */
typedef struct {
	uint32_t backendId;
	const char *providerName;
	struct {
		Qnn_Version_t coreApiVersion;
		Qnn_Version_t backendApiVersion;
	} apiVersion;
} QnnInterface_head_t;

typedef Qnn_ErrorHandle_t (*get_providers_fn)(const QnnInterface_head_t ***, uint32_t *);

/* SDK library directories for a machine, in order of preference. */
static const char *const aarch64_dirs[] = {
	"aarch64-oe-linux-gcc11.2", "aarch64-ubuntu-gcc9.4", "aarch64-oe-linux-gcc9.3",
	"aarch64-oe-linux-gcc8.2", "aarch64-android", NULL,
};
static const char *const x86_64_dirs[] = { "x86_64-linux-clang", NULL };

/* HTP versions of Snapdragon parts, by the name the kernel's socinfo
 * driver gives them in /sys/devices/soc0/machine. */
static const struct {
	const char *soc, *htp;
} htp_versions[] = {
	{ "SM8350", "v68" },  { "SM8450", "v69" },   { "SM8475", "v69" },   { "SM8550", "v73" },
	{ "SM8650", "v75" },  { "SM8750", "v79" },   { "QCM6490", "v68" },  { "QCS6490", "v68" },
	{ "QCS8550", "v73" }, { "SC8280X", "v68" },  { "SC8280XP", "v68" }, { "SA8295P", "v68" },
	{ "X1E80100", "v73" }, { "X1P64100", "v73" },
};

const char *hw_qnn_htp_arch(const char *soc)
{
	for (size_t i = 0; i < sizeof(htp_versions) / sizeof(htp_versions[0]); i++)
		if (strcmp(soc, htp_versions[i].soc) == 0)
			return htp_versions[i].htp;
	return NULL;
}

static const char *const *lib_dirs(const char *machine)
{
	if (strcmp(machine, "aarch64") == 0 || strcmp(machine, "arm64") == 0)
		return aarch64_dirs;
	if (strcmp(machine, "x86_64") == 0)
		return x86_64_dirs;
	return NULL;
}

/* The path of lib in the SDK for this machine, or false (reason says why). */
static bool sdk_lib_find(const char *sdk_root, const char *machine, const char *lib, char *buf,
			 size_t len, char *reason, size_t rlen)
{
	const char *const *dirs = lib_dirs(machine);

	if (!dirs) {
		snprintf(reason, rlen, "the QNN SDK has no libraries for machine \"%s\"", machine);
		return false;
	}
	for (size_t i = 0; dirs[i]; i++) {
		if (hw_path(buf, len, sdk_root, "/lib/%s/%s", dirs[i], lib) == 0 &&
		    hw_file_exists("", "%s", buf))
			return true;
	}
	snprintf(reason, rlen, "no %s in QNN SDK \"%s\" (looked in lib/%s%s)", lib, sdk_root, dirs[0],
		 dirs[1] ? " and the other targets of this machine" : "");
	return false;
}

/* The SDK version: "version: X" in <root>/sdk.yaml, else the root's name
 * when it looks like a version ("/opt/qcom/aistack/qairt/2.28.0.241029"). */
static void sdk_version(const char *sdk_root, char *buf, size_t len)
{
	char text[4096];
	const char *base;

	buf[0] = '\0';
	if (hw_file_read(sdk_root, text, sizeof(text), "/sdk.yaml") == 0) {
		for (char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
			if (strncmp(line, "version:", 8) == 0) {
				line += 8 + strspn(line + 8, " \t\"'");
				snprintf(buf, len, "%.*s", (int)strcspn(line, "\"'\n \t"), line);
				return;
			}
		}
	}
	base = strrchr(sdk_root, '/');
	base = base && base[1] ? base + 1 : sdk_root;
	if (base[0] >= '0' && base[0] <= '9' && strchr(base, '.'))
		hf_strlcpy(buf, base, len);
}

/* The FastRPC nodes under root/dev: whether one reaches the compute DSP,
 * and the names of all of them (for the reason when none does). */
static bool fastrpc_nodes(const char *root, char *names, size_t len)
{
	char dir[HW_PATH_MAX];
	struct dirent *de;
	bool cdsp = false;
	DIR *d;

	names[0] = '\0';
	if (hw_path(dir, sizeof(dir), root, "/dev") < 0 || !(d = opendir(dir)))
		return false;
	while ((de = readdir(d))) {
		bool fastrpc = strncmp(de->d_name, "fastrpc-", 8) == 0;
		bool adsprpc = strncmp(de->d_name, "adsprpc-smd", 11) == 0;

		if (!fastrpc && !adsprpc)
			continue;
		/* adsprpc-smd is the older single node for every DSP. */
		if (adsprpc || strncmp(de->d_name, "fastrpc-cdsp", 12) == 0)
			cdsp = true;
		if (strlen(names) + strlen(de->d_name) + 8 < len)
			snprintf(names + strlen(names), len - strlen(names), "%s/dev/%s",
				 names[0] ? ", " : "", de->d_name);
	}
	closedir(d);
	return cdsp;
}

static void soc_name(const char *root, char *buf, size_t len)
{
	if (hw_file_read(root, buf, len, "/sys/devices/soc0/machine") < 0)
		buf[0] = '\0';
}

/* Loads a backend library and reads its first provider.  Returns 0, or a
 * negative errno with why in reason. */
static int backend_open(const char *lib, void **ret_handle, const QnnInterface_head_t **ret_iface,
			char *reason, size_t len)
{
	const QnnInterface_head_t **providers = NULL;
	get_providers_fn get;
	uint32_t n = 0;
	Qnn_ErrorHandle_t rc;
	void *h;
	int r;

	r = hw_lib_open(lib, true, &h, reason, len);
	if (r < 0)
		return r;
	get = (get_providers_fn)hw_lib_sym(h, "QnnInterface_getProviders");
	if (!get) {
		snprintf(reason, len, "library \"%s\" does not export QnnInterface_getProviders "
				      "(not a QNN backend)",
			 lib);
		hw_lib_close(h);
		return -ELIBBAD;
	}
	rc = get(&providers, &n);
	if ((rc & 0xffffffffu) != 0 || n == 0 || !providers || !providers[0]) {
		snprintf(reason, len, "QnnInterface_getProviders of \"%s\" failed (error %" PRIu64 ")",
			 lib, (uint64_t)rc);
		hw_lib_close(h);
		return -EIO;
	}
	*ret_handle = h;
	*ret_iface = providers[0];
	return 0;
}

int hw_qnn_probe(const char *root, const char *sdk_root, const char *machine,
		 struct hw_inventory *inv, struct hw_backend_status *st)
{
	const QnnInterface_head_t *iface = NULL;
	char htp[HW_PATH_MAX], cpu[HW_PATH_MAX], nodes[192], soc[64], version[64], why[160];
	bool have_sdk = sdk_root && *sdk_root, have_cpu = false;
	const char *arch;
	struct hw_device *d;
	void *lib = NULL, *cpu_lib = NULL;
	const QnnInterface_head_t *cpu_iface;

	if (have_sdk) {
		if (!sdk_lib_find(sdk_root, machine, "libQnnHtp.so", htp, sizeof(htp), st->reason,
				  sizeof(st->reason)))
			goto absent;
		if (sdk_lib_find(sdk_root, machine, "libQnnCpu.so", cpu, sizeof(cpu), why, sizeof(why)))
			have_cpu = backend_open(cpu, &cpu_lib, &cpu_iface, why, sizeof(why)) == 0;
	} else {
		hf_strlcpy(htp, "libQnnHtp.so", sizeof(htp));
	}
	if (backend_open(htp, &lib, &iface, st->reason, sizeof(st->reason)) < 0) {
		if (!have_sdk && strlen(st->reason) + 40 < sizeof(st->reason))
			strcat(st->reason, " (QNN_SDK_ROOT is not set)");
		goto absent;
	}
	hw_lib_path(hw_lib_sym(lib, "QnnInterface_getProviders"), htp, st->library,
		    sizeof(st->library));
	if (!fastrpc_nodes(root, nodes, sizeof(nodes))) {
		if (nodes[0])
			hw_status_absent(st, "no FastRPC node for the compute DSP (found only %s)",
					 nodes);
		else
			hw_status_absent(st, "no FastRPC device node under /dev (fastrpc-cdsp*, "
					     "adsprpc-smd): the Hexagon DSP is not reachable");
		goto absent;
	}

	d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_QNN, 0);
	if (!d) {
		hw_status_absent(st, "the device list is full");
		goto absent;
	}
	soc_name(root, soc, sizeof(soc));
	arch = soc[0] ? hw_qnn_htp_arch(soc) : NULL;
	snprintf(d->name, sizeof(d->name), "Qualcomm Hexagon HTP%s%s%s%s", arch ? " " : "",
		 arch ? arch : "", soc[0] ? " on " : "", soc);
	hf_strlcpy(d->arch, arch ? arch : "", sizeof(d->arch));
	hf_strlcpy(d->library, st->library, sizeof(d->library));
	snprintf(d->driver, sizeof(d->driver), "QNN API %" PRIu32 ".%" PRIu32 ".%" PRIu32,
		 iface->apiVersion.coreApiVersion.major, iface->apiVersion.coreApiVersion.minor,
		 iface->apiVersion.coreApiVersion.patch);
	if (soc[0])
		hw_device_attr_set(d, "soc", soc);
	if (arch)
		hw_device_attr_set(d, "htp_arch", arch);
	if (iface->providerName && iface->providerName[0])
		hw_device_attr_set(d, "qnn_provider", iface->providerName);
	if (have_cpu)
		hw_device_attr_set(d, "qnn_cpu_backend", cpu);

	st->present = true;
	st->reason[0] = '\0';
	sdk_version(have_sdk ? sdk_root : "", version, sizeof(version));
	if (version[0])
		snprintf(st->driver, sizeof(st->driver), "QNN SDK %s", version);
	else
		hf_strlcpy(st->driver, d->driver, sizeof(st->driver));
	hw_lib_close(lib);
	hw_lib_close(cpu_lib);
	return 0;

absent:
	st->present = false;
	st->library[0] = '\0';
	if (have_cpu && strlen(st->reason) + 48 < sizeof(st->reason))
		strcat(st->reason, "; the QNN CPU backend (libQnnCpu.so) loads");
	hw_lib_close(lib);
	hw_lib_close(cpu_lib);
	return 0;
}
