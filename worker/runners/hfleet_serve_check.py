#!/usr/bin/env python3
"""Developer tool: checks the runner's serve mode (a warm runner) on a real GPU.

  python3 worker/runners/hfleet_serve_check.py      (from the repository root; needs torch + CUDA)

Writes $OUT/warm-check.json (default /tmp) and $OUT/serve-output.log:
  poison_direct     a real CUDA device-side assert: how it is classified
                    (expect "fatal") and whether the tiny-operation check sees
                    the device as unusable afterwards (expect false)
  poison_reported   serve() whose task hits that assert and reports it: expect
                    exit 3 after one done line with fatal true
  poison_disguised  the same, but the task's reason names no device error:
                    only the tiny operation can tell; expect the same
  cold / warm       eight CUDA test tasks run one process each (--task) and
                    then all through one --serve process: statuses must match
                    (same_statuses), and the wall times show what a warm
                    runner saves (imports once)
Not part of any test suite: CI has no GPU.
"""
import io, json, os, subprocess, sys, tempfile, time
ROOT = os.getcwd()
RUNNERS = os.path.join(ROOT, "worker", "runners")
RUNNER = os.path.join(RUNNERS, "hfleet_runner.py")
OUT = os.environ.get("OUT", "/tmp")
report = {}

POISON = r'''
import io, json, os, sys
sys.path.insert(0, %r)
import torch, hfleet_runner as cli, hfleet_runner_lib as lib, hfleet_runner_torch as rt
mode = sys.argv[1]
out = {"usable_before_init": rt.device_still_usable()}
x = torch.ones(4, device="cuda")
out["usable_after_init"] = rt.device_still_usable()
def poison():
    try:
        y = x[torch.tensor([10], device="cuda")]
        torch.cuda.synchronize()
        return "no error"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
if mode == "direct":
    text = poison()
    out["error_text"] = text[:300]
    out["classified"] = lib.classify_device_error(text)
    out["usable_after_assert"] = rt.device_still_usable()
else:
    # the serve loop with a stand-in run: the reason names no device error
    # ("disguised"), so only the tiny operation can tell
    r, w = os.pipe()
    def run(task, result, info):
        text = poison()
        info["task_id"] = 7
        reason = "ValueError: something else" if mode == "disguised" else text
        return 0, lib.make_result("error", reason, env={})
    req = json.dumps({"task": "/t", "result": "/r"}).encode() + b"\n"
    rc = cli.serve(w, stdin=io.BytesIO(req * 2), run=run)
    os.close(w)
    out["serve_rc"] = rc
    out["done_lines"] = [json.loads(l) for l in os.fdopen(r, "rb").read().splitlines()]
print("RESULT " + json.dumps(out))
''' % RUNNERS

for mode in ("direct", "reported", "disguised"):
    p = subprocess.run([sys.executable, "-c", POISON, mode], capture_output=True, text=True, timeout=300)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    report["poison_" + mode] = json.loads(line[0][7:]) if line else {"rc": p.returncode, "stderr": p.stderr[-2000:]}

MODELS = [("bert", "encoder-only", "fill-mask", "text"), ("gpt2", "decoder-only", "text-generation", "text"),
          ("t5", "encoder-decoder", "text2text-generation", "text"), ("vit", "vision", "image-classification", "image"),
          ("roberta", "encoder-only", "fill-mask", "text"), ("llama", "decoder-only", "text-generation", "text"),
          ("whisper", "speech", "automatic-speech-recognition", "audio"), ("clip", "vision-text", "zero-shot-image-classification", "image+text")]
d = tempfile.mkdtemp()
def task_file(i, m):
    t = {"task_id": i, "attempt": 1, "model_type": m[0], "family": m[1], "task": m[2], "modality": m[3],
         "kind": "test", "backend": "cuda", "precision": "fp32", "batch_size": 2, "seq_len": 32, "timeout_s": 600}
    path = os.path.join(d, f"task-{i}.json")
    json.dump(t, open(path, "w"))
    return path

env = dict(os.environ, CUDA_VISIBLE_DEVICES="0")
cold = {}
t0 = time.perf_counter()
for i, m in enumerate(MODELS, 1):
    rp = os.path.join(d, f"cold-{i}.json")
    s = time.perf_counter()
    p = subprocess.run([sys.executable, RUNNER, "--task", task_file(i, m), "--result", rp], env=env,
                       capture_output=True, text=True, timeout=300)
    res = json.load(open(rp)) if os.path.exists(rp) else {"status": f"no result rc={p.returncode}"}
    cold[m[0]] = {"status": res["status"], "reason": res.get("reason", "")[:160], "wall_s": round(time.perf_counter() - s, 2)}
report["cold_total_s"] = round(time.perf_counter() - t0, 2)
report["cold"] = cold

r, w = os.pipe()
t0 = time.perf_counter()
log = open(os.path.join(OUT, "serve-output.log"), "wb")
p = subprocess.Popen([sys.executable, RUNNER, "--serve"], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                     pass_fds=(w,), env=dict(env, HFLEET_CONTROL_FD=str(w)))
os.close(w)
ctl = os.fdopen(r, "rb")
warm = {}
for i, m in enumerate(MODELS, 1):
    rp = os.path.join(d, f"warm-{i}.json")
    s = time.perf_counter()
    p.stdin.write(json.dumps({"task": task_file(i, m), "result": rp}).encode() + b"\n"); p.stdin.flush()
    done = json.loads(ctl.readline())
    res = json.load(open(rp))
    warm[m[0]] = {"status": res["status"], "reason": res.get("reason", "")[:160], "wall_s": round(time.perf_counter() - s, 2),
                  "done": done}
p.stdin.close()
report["serve_exit"] = p.wait(120)
report["warm_total_s"] = round(time.perf_counter() - t0, 2)
report["warm"] = warm
report["same_statuses"] = all(cold[k]["status"] == warm[k]["status"] for k in cold)
json.dump(report, open(os.path.join(OUT, "warm-check.json"), "w"), indent=1)
print(json.dumps(report, indent=1))
