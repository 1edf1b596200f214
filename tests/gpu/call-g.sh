#!/usr/bin/env bash
# Issue 14, one device call: the recipes written without a GPU (fnet's
# Fourier mixing as DFT matrix products and autoformer's decoder a power of
# two long, hfleet_recipes_config.py and hfleet_recipes_audio.py; align's
# BatchNorm statistics set from its input, hfleet_build.calibrate_batchnorm;
# EdgeTAM's timm backbone config answered offline,
# hfleet_build.offline_timm_configs), as the system runs them: the test
# kind (cuda, fp32, batch 2) and the benchmark kind (fp16, batch 1, seq 128,
# 10 iterations; fnet also at bf16 and fp32); then the torch unit tests of
# those recipes and of RAG (whose recipe was renamed since its check).  On a GPU of 100 GiB or more (an
# H200) sweep 7 runs first (HF_SWEEP7_LIST: the types between the H100's
# and the H200's benchmark limits, through call-d.sh), within HF_SWEEP7_S.
# Everything goes to $OUT.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=$(command -v python3)
mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt"
cat "$OUT/gpu.txt"
if [ "${mib:-0}" -ge 102400 ] && [ -n "${HF_SWEEP7_LIST:-}" ]; then
  mkdir -p "$OUT/sweep7"
  OUT="$OUT/sweep7" HF_KIND=benchmark HF_CENSUS=0 HF_ONLY_FILE="$HF_SWEEP7_LIST" \
    HF_DEADLINE="${HF_SWEEP7_S:-330}" HF_JOBS=4 bash tests/gpu/call-d.sh
  echo "sweep 7 done: $SECONDS s"
fi
types=${HF_ONLY:-fnet,autoformer,align,edgetam,edgetam_vision_model,edgetam_video}
. tests/gpu/sweep-fn.sh
deadline=${HF_DEADLINE:-90}
gpu_sweep test fp32 2 test "$types" "$deadline"
gpu_sweep benchmark fp16 1 bench "$types" "$deadline"
gpu_sweep benchmark bf16 1 bench-bf16 fnet "$deadline"
gpu_sweep benchmark fp32 1 bench-fp32 fnet "$deadline"
(cd worker/runners && timeout 240 $py -m unittest -v test_runner_torch.TestHalfPrecisionFFT \
  test_runner_torch.TestBatchNormCalibration test_runner_recipes.TestBatchNormCalibration \
  test_runner_torch.TestOfflineTimmBackbone test_runner_recipes.TestOfflineTimmConfigs \
  test_runner_torch.TestRunnerWithTorch.test_rag_runs_against_the_synthetic_index \
  test_runner_torch.TestRunnerWithTorch.test_synthetic_index_returns_the_nearest_documents \
  test_runner_recipes.TestHalfPrecisionFFT) >"$OUT/unittest.log" 2>&1
tail -4 "$OUT/unittest.log"; echo "all done: $SECONDS s"
