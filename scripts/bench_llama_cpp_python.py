#!/usr/bin/env python3
"""Outside baseline for `lore bench generation`: llama-cpp-python (built from PyPI) on the same
GGUF, threads and prompt, with the same bare loop (argmax, one token per decode).

Usage: bench_llama_cpp_python.py MODEL PROMPT_FILE [THREADS] [TOKENS] [RUNS]
The prompt file comes from `lore bench generation --prompt-out FILE`.
"""
import sys
import time

import numpy as np
from llama_cpp import Llama


def main() -> None:
    model, prompt_file = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    prompt = open(prompt_file, encoding="utf-8").read()
    llm = Llama(model_path=model, n_ctx=4096, n_batch=512, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
    prompt_secs = gen_secs = 0.0
    for _ in range(runs):
        time.sleep(0.5)
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        prompt_secs += time.perf_counter() - start
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        first = time.perf_counter()
        for _ in range(n):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        gen_secs += time.perf_counter() - first
    print(f"llama-cpp-python: prompt {len(tokens)} tok at {len(tokens) * runs / prompt_secs:.1f} tok/s; "
          f"generation {n} tok at {(n - 1) * runs / gen_secs:.1f} tok/s")


if __name__ == "__main__":
    main()
