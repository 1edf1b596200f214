#!/usr/bin/env bash
# Issue 14, one device call: the recipes written without a GPU, checked on
# one.  The video trackers (hfleet_recipes_video.py: sam2_video,
# sam3_tracker_video, edgetam_video, sam3_video) and the float16 random
# initialisation fixes (hfleet_recipes_config.py: cpmant's init_std,
# align's vision convolutions), each as the system runs them: the test kind
# (cuda, fp32, batch 2) and the benchmark kind (fp16, batch 1, seq 128,
# 10 iterations); then their torch unit tests, and which registry types the
# generic init_std fix touches.  Everything goes to $OUT.
# Run at ce97e64 on an H100 (docs/gpu-evidence/issue14/h100-call-f/): the
# four trackers and cpmant passed both kinds; align's He-init recipe left
# NaN inside its vision tower at fp16 and was taken out, so align still
# fails its fp16 benchmark as before.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
py=$(command -v python3)
types=${HF_ONLY:-sam2_video,sam3_tracker_video,edgetam_video,sam3_video,align,cpmant}
. tests/gpu/sweep-fn.sh
gpu_sweep test fp32 2 test "$types" "${HF_DEADLINE:-150}"
gpu_sweep benchmark fp16 1 bench "$types" "${HF_DEADLINE:-150}"
(cd worker/runners && timeout 200 $py -m unittest -v test_runner_torch.TestHalfPrecisionInit \
  test_runner_torch.TestVideoTrackers test_runner_recipes.TestVideoTrackerRecipes) >"$OUT/unittest.log" 2>&1
tail -4 "$OUT/unittest.log"; echo "unit tests done: $SECONDS s"
timeout 60 $py - <<'PY' >"$OUT/tame-init-std.txt" 2>&1
import sys
sys.path.insert(0, "worker/runners")
from transformers import AutoConfig, CONFIG_MAPPING
import hfleet_recipes_config as rc
for t in sorted(CONFIG_MAPPING.keys()):
    try:
        c = AutoConfig.for_model(t)
    except Exception:
        continue
    for n in rc.tame_init_std(c, False):
        print(t, n)
PY
cat "$OUT/tame-init-std.txt" | cut -c1-120; echo "all done: $SECONDS s"
