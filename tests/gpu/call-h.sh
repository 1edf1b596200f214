#!/usr/bin/env bash
# Issue 14, one device call (about 560 s, an H200): the core and all
# suites' test jobs through the whole system with the runner as it is now
# (call-b.sh without benchmarks or modes; .carry from tests/gpu/bundle.sh
# carried), then the runner's own benchmark sweep, with tracebacks and
# transformers' sources (call-d.sh), of the five types sweep 7 found failing
# at full size (call G), four of them with default-config fixes since.
# Everything goes to $OUT: the suites' files and sweep5.tgz.
HF_BENCH_SUITES= HF_BENCH_MODES=none HF_SUITES="core all" HF_CALL_LIMIT=${HF_SUITES_LIMIT:-360} \
  HF_WATCH_LIMIT=100 bash tests/gpu/call-b.sh
mkdir -p /tmp/s5
OUT=/tmp/s5 HF_KIND=benchmark HF_CENSUS=0 HF_JOBS=2 HF_DEADLINE=${HF_SWEEP_S:-140} \
  HF_ONLY=${HF_ONLY:-cohere_compass,deepseek_ocr2,deepseek_v2,granitemoehybrid,qwen3_5_moe} \
  timeout $(( ${HF_SWEEP_S:-140} + 30 )) bash tests/gpu/call-d.sh
tar czf "$OUT/sweep5.tgz" -C /tmp s5
ls -la "$OUT"; echo "end: $SECONDS s"
