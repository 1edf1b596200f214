#!/usr/bin/env python3
"""Validate the hfleet model registry (models.tsv).

Usage:
    python3 check_registry.py MODELS_TSV TRANSFORMERS_TYPES_TSV

MODELS_TSV              the registry (see README.md for the format)
TRANSFORMERS_TYPES_TSV  model types transformers can build with AutoModel; first
                        column is the model_type, first line is a header
                        (reference/transformers-5.17-model-types.tsv beside this file).
                        The registry must hold exactly these types: every one, no other.

Prints per-family counts and exits 0 when the registry is valid; prints every
problem found (file:line: message) and exits 1 otherwise.  Standard library only.
"""

import re
import sys
from collections import Counter

HEADER = ["model_type", "hf_id", "family", "task", "modality", "size_class", "notes", "limits",
          "suites", "source"]
HEADER_V2 = HEADER[:8]  # older files: no suites and source columns
HEADER_V1 = HEADER[:7]  # older still: no limits column
SOURCES = {"", "transformers", "reference-list"}
SUITE_RE = re.compile(r"^[a-z0-9_.-]{1,63}$")

BACKENDS = ["cpu", "cuda", "rocm", "mps", "openvino", "qnn"]
KINDS = ["test", "benchmark"]
LIMIT_SEP = " ; "  # between entries of the limits column; a bare ";" may be in a reason

FAMILIES = [
    "encoder-only", "decoder-only", "encoder-decoder", "vision", "vision-text",
    "speech", "multimodal", "diffusion", "mixture-of-experts", "state-space", "rag",
]

TASKS = {
    # base list
    "feature-extraction", "fill-mask", "text-classification", "token-classification",
    "question-answering", "text-generation", "text2text-generation", "summarization",
    "translation", "image-classification", "object-detection", "image-segmentation",
    "depth-estimation", "zero-shot-image-classification", "image-to-text",
    "image-text-to-text", "visual-question-answering", "automatic-speech-recognition",
    "audio-classification", "text-to-audio", "text-to-speech", "video-classification",
    "time-series-forecasting", "mask-generation", "zero-shot-object-detection",
    "document-question-answering", "image-feature-extraction", "audio-feature-extraction",
    # additions (Hub pipeline tags with no good equivalent above; see README.md)
    "table-question-answering", "image-to-image", "zero-shot-audio-classification",
    "audio-text-to-text", "video-text-to-text",
}

MODALITIES = {
    "text", "image", "audio", "video", "image+text", "audio+text", "video+text",
    "time-series", "image+text+audio",
}

SIZE_CLASSES = {"tiny", "small", "medium", "large", "xlarge"}

VERSION_RE = re.compile(r"^# transformers ([0-9][^ ]*)")

# Hub repo ids: "owner/name", or a bare legacy name such as "gpt2".
# Each part: letters, digits, '-', '_', '.'; starts and ends alphanumeric; max 96 chars.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
HF_ID_RE = re.compile(r"^(?:%s/)?%s$" % (_PART, _PART))


def load_transformers_types(path, problems):
    types = set()
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        problems.append("%s: cannot read: %s" % (path, e))
        return types
    if not lines:
        problems.append("%s: empty file" % path)
        return types
    for line in lines[1:]:  # first line is the header
        if not line.strip() or line.startswith("#"):
            continue
        types.add(line.split("\t", 1)[0].strip())
    if not types:
        problems.append("%s: no model types found" % path)
    return types


def check_limits(text, where, model_type, problems):
    """Problems of one limits field: entries "SCOPE: reason" separated by " ; ",
    SCOPE "*", "BACKEND" or "BACKEND/KIND"."""
    if not text.strip():
        return
    seen = set()
    for entry in text.split(LIMIT_SEP):
        entry = entry.strip(" ")
        scope, colon, reason = entry.partition(":")
        if not colon:
            problems.append("%s: limit %r of %r is not \"SCOPE: reason\"" % (where, entry, model_type))
            continue
        scope, reason = scope.strip(" "), reason.strip(" ")
        backend, slash, kind = scope.partition("/")
        if backend != "*" and backend not in BACKENDS:
            problems.append("%s: unknown backend %r in a limit of %r (valid: *, %s)"
                            % (where, backend, model_type, ", ".join(BACKENDS)))
            continue
        if slash and kind not in KINDS:
            problems.append("%s: unknown kind %r in a limit of %r (valid: %s)"
                            % (where, kind, model_type, ", ".join(KINDS)))
            continue
        if not reason:
            problems.append("%s: a limit of %r (%s) has no reason" % (where, model_type, scope))
        if (backend, kind) in seen:
            problems.append("%s: %r lists the limit %s twice" % (where, model_type, scope))
        seen.add((backend, kind))


def check(models_path, types_path):
    problems = []
    known_types = load_transformers_types(types_path, problems)

    try:
        with open(models_path, "rb") as f:
            raw = f.read()
    except OSError as e:
        print("error: %s: cannot read: %s" % (models_path, e))
        return 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        print("error: %s: not valid UTF-8: %s" % (models_path, e))
        return 1
    if text.startswith("\ufeff"):
        problems.append("%s:1: file starts with a UTF-8 BOM" % models_path)
        text = text[1:]
    if "\r" in text:
        problems.append("%s: contains CR characters (use LF line endings)" % models_path)

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # trailing newline
    if not lines:
        print("error: %s: empty file" % models_path)
        return 1

    header = HEADER
    if lines[0].rstrip("\r") == "\t".join(HEADER_V1):
        header = HEADER_V1
    elif lines[0].rstrip("\r") == "\t".join(HEADER_V2):
        header = HEADER_V2
    elif lines[0].rstrip("\r") != "\t".join(HEADER):
        problems.append("%s:1: header must be exactly %r, got %r"
                        % (models_path, "\t".join(HEADER), lines[0]))

    entries = []  # (lineno, fields)
    version = None
    for lineno, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        where = "%s:%d" % (models_path, lineno)
        if line.startswith("#"):
            m = VERSION_RE.match(line)
            if m and version is None:
                version = m.group(1)
            continue
        if not line.strip():
            problems.append("%s: blank line" % where)
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            problems.append("%s: expected %d tab-separated fields, got %d"
                            % (where, len(header), len(fields)))
            continue
        entries.append((lineno, (fields + [""] * len(HEADER))[:len(HEADER)]))

    seen = {}
    core = 0
    prev_type = None
    families = Counter()
    for lineno, f in entries:
        where = "%s:%d" % (models_path, lineno)
        model_type, hf_id, family, task, modality, size_class, _notes, limits, suites, source = f
        for name, value in zip(HEADER[:6], f[:6]):
            if value != value.strip():
                problems.append("%s: %s %r has leading/trailing whitespace" % (where, name, value))
            # hf_id: empty where transformers records no checkpoint; size_class: not yet weighed
            if not value.strip() and name not in ("hf_id", "size_class"):
                problems.append("%s: %s is empty" % (where, name))
        if header == HEADER_V1 or header == HEADER_V2:
            suites = "core"  # an older file: every model is the core suite
        names = suites.split(",") if suites else []
        for name in names:
            if not SUITE_RE.match(name):
                problems.append("%s: suite %r of %r is not 1 to 63 of a-z 0-9 _ . -" % (where, name, model_type))
            elif name == "all" or name in FAMILIES:
                problems.append("%s: suite %r of %r is reserved" % (where, name, model_type))
        if len(set(names)) != len(names):
            problems.append("%s: %r lists a suite twice" % (where, model_type))
        if "core" in names:
            core += 1
        if source not in SOURCES:
            problems.append("%s: source %r of %r is not transformers or reference-list" % (where, source, model_type))
        if model_type in seen:
            problems.append("%s: duplicate model_type %r (first at line %d)"
                            % (where, model_type, seen[model_type]))
        else:
            seen[model_type] = lineno
        if known_types and model_type not in known_types:
            problems.append("%s: model_type %r is not in %s" % (where, model_type, types_path))
        if prev_type is not None and model_type.encode("utf-8") < prev_type.encode("utf-8"):
            problems.append("%s: not sorted by model_type (%r comes after %r)"
                            % (where, model_type, prev_type))
        prev_type = model_type
        if hf_id and not HF_ID_RE.match(hf_id):
            problems.append("%s: hf_id %r is not of the form owner/name (or a bare legacy name)"
                            % (where, hf_id))
        if family not in FAMILIES:
            problems.append("%s: family %r not one of: %s" % (where, family, ", ".join(FAMILIES)))
        else:
            families[family] += 1
        if task not in TASKS:
            problems.append("%s: task %r not in the allowed task list" % (where, task))
        if modality not in MODALITIES:
            problems.append("%s: modality %r not one of: %s"
                            % (where, modality, ", ".join(sorted(MODALITIES))))
        if size_class and size_class not in SIZE_CLASSES:
            problems.append("%s: size_class %r not one of: %s"
                            % (where, size_class, ", ".join(sorted(SIZE_CLASSES))))
        check_limits(limits, where, model_type, problems)

    total = len(entries)
    missing = sorted(known_types - set(seen))
    if known_types and missing:
        problems.append("%s: %d model type(s) of %s missing: %s"
                        % (models_path, len(missing), types_path, ", ".join(missing)))

    print("per-family counts:")
    for fam in FAMILIES:
        print("  %-20s %4d" % (fam, families[fam]))
    print("  %-20s %4d" % ("total", total))
    print("  %-20s %4d" % ("suite core", core))
    print("built from transformers %s" % (version or "(not said)"))

    if problems:
        print("\n%d problem(s):" % len(problems))
        for p in problems:
            print("  " + p)
        print("FAILED")
        return 1
    print("OK")
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print("usage: python3 check_registry.py MODELS_TSV TRANSFORMERS_TYPES_TSV")
        return 1
    return check(argv[1], argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
