#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a weights directory (runner.weights_dir) of toy checkpoints under
registry ids, for the known-answer check through the worker:

  DIR/google-bert/bert-base-uncased  a 2-layer BERT trained to name capitals
  DIR/openai-community/gpt2          a 2-layer GPT-2 trained to count
  DIR/FacebookAI/roberta-base        the same BERT untrained: its test must fail

They are not the real checkpoints (nothing can be downloaded on the device
machine); they are real trained weights with their tokenizers, loaded the
way real ones are.  Usage: toy_weights.py DIR
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "worker", "runners"))

from test_runner_torch import save_capitals_bert, save_counting_gpt2  # noqa: E402


def main():
    root = sys.argv[1]
    save_capitals_bert(os.path.join(root, "google-bert", "bert-base-uncased"), 300)
    save_counting_gpt2(os.path.join(root, "openai-community", "gpt2"), 300)
    save_capitals_bert(os.path.join(root, "FacebookAI", "roberta-base"), 0)
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            print(f"{os.path.getsize(p):>10}  {os.path.relpath(p, root)}")


if __name__ == "__main__":
    main()
