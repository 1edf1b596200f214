#!/usr/bin/env python3
"""Where a runner's start and a model's construction go on this machine
(issue 14): import times, building a model from its config on the CPU
against directly on the GPU, and whether a child forked after the imports
(before CUDA is initialised) can use the GPU.  Prints one JSON line per
measurement; asserts nothing."""
import json
import os
import sys
import time

t = time.perf_counter()
import torch  # noqa: E402
t_torch = time.perf_counter() - t
t = time.perf_counter()
import transformers  # noqa: E402
from transformers import AutoConfig, AutoModel  # noqa: E402
t_tf = time.perf_counter() - t
print(json.dumps({"import_torch_s": round(t_torch, 3), "import_transformers_s": round(t_tf, 3),
                  "torch": torch.__version__, "transformers": transformers.__version__,
                  "cpu_threads": torch.get_num_threads()}), flush=True)


def build(model_type, where, **kw):
    cfg = AutoConfig.for_model(model_type, **kw)
    torch.cuda.synchronize() if torch.cuda.is_initialized() else None
    t = time.perf_counter()
    if where == "cpu":
        m = AutoModel.from_config(cfg).to("cuda")
    else:
        with torch.device("cuda"):
            m = AutoModel.from_config(cfg)
    torch.cuda.synchronize()
    return time.perf_counter() - t, sum(p.numel() for p in m.parameters())


pid = os.fork()
if pid == 0:
    t = time.perf_counter()
    torch.cuda.init()
    x = torch.ones(1024, device="cuda").sum().item()
    print(json.dumps({"forked_child_cuda_ok": x == 1024, "child_cuda_init_s": round(time.perf_counter() - t, 3)}), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
torch.cuda.init()
torch.ones(1, device="cuda")
for mt, kw in [("bert", {}), ("gpt2", {}), ("vit", {}), ("bert", {"num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2})]:
    for where in ("cpu", "cuda", "cpu", "cuda"):
        s, n = build(mt, where, **kw)
        print(json.dumps({"model": mt, "small": bool(kw), "build_on": where, "build_s": round(s, 3), "params": n}), flush=True)
for n in (1, 4, 16):
    torch.set_num_threads(n)
    s, _ = build("bert", "cpu")
    print(json.dumps({"model": "bert", "build_on": "cpu", "threads": n, "build_s": round(s, 3)}), flush=True)
sys.exit(0)
