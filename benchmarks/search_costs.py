"""Costs of one beam-search run on the embedded model with the CPU judge, as ratios from one run:

* prefix reuse: policy prompt tokens reused / prompt tokens sent (goal >= 0.9);
* PRM cost: judge tokens evaluated per scored step / (the new step's tokens + the template suffix), and the
  same for re-scoring the whole prefix at every step as the public implementations do;
* search overhead: wall time outside engine and PRM calls / total wall time (goal <= 10%).

    python benchmarks/search_costs.py [--problems 4] [--budget 8] [--beam-width 4]
"""

from __future__ import annotations

import argparse
import time

from omegaconf import OmegaConf

from ttslab.problems import load_problems
from ttslab.engines.llamacpp import LlamaCppEngine
from ttslab.rewards import build_reward_model
from ttslab.runner import CONF_DIR
from ttslab.config import MethodSpec
from ttslab.search.loop import make_task, run_tasks


class Timed:
    """Wraps an object and adds the time spent in its calls to a shared counter."""

    def __init__(self, inner, clock: list[float]):
        self._inner, self._clock = inner, clock

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*a, **k):
            start = time.perf_counter()
            try:
                return attr(*a, **k)
            finally:
                self._clock[0] += time.perf_counter() - start

        return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--beam-width", type=int, default=4)
    args = ap.parse_args()
    clock = [0.0]
    policy = LlamaCppEngine("embedded:qwen2.5-coder-0.5b", max_sequences=32, n_ctx_per_sequence=2048)
    judge_engine = LlamaCppEngine("embedded:qwen2.5-coder-0.5b", max_sequences=32, n_ctx_per_sequence=2048)
    judge = build_reward_model(OmegaConf.load(CONF_DIR / "prm" / "cpu_judge.yaml"), lambda spec: judge_engine)
    spec = MethodSpec("beam_search", args.budget, beam_width=args.beam_width, max_tokens=768,
                      max_step_tokens=256, max_steps=12)
    tasks = [make_task(p, spec) for p in load_problems(limit=args.problems)]
    start = time.perf_counter()
    run_tasks(tasks, Timed(policy, clock), Timed(judge, clock), "qwen2.5")
    total = time.perf_counter() - start

    nodes = [n for t in tasks for n in t.tree.nodes[1:]]
    sent = sum(n.usage.prompt_tokens for n in nodes)
    reused = sum(n.usage.cached_tokens for n in nodes)
    prm = [t.prm_usage for t in tasks]
    prm_evaluated = sum(u.prompt_tokens - u.cached_tokens for u in prm)
    scored = [n for n in nodes if n.valid]
    # the judge's own view of a new step: its tokens plus the template around it
    step_tokens = sum(len(judge_engine.tokenize(n.text.strip())) for n in scored)
    suffix = len(judge_engine.tokenize("<|im_end|>\n<|im_start|>user\nStep 2:\n<|im_end|>\n<|im_start|>assistant\n"))
    full = 0
    for t in tasks:
        for n in t.tree.nodes[1:]:
            if n.valid:
                full += len(judge_engine.tokenize(judge.prompt(t.problem.question, t.tree.steps(n))))
    print(f"beam search N={args.budget} M={args.beam_width} on {args.problems} bundled problems: {total:.1f} s, "
          f"{len(nodes)} steps generated, {len(scored)} scored")
    print(f"policy prefix reuse: {reused}/{sent} prompt tokens = {reused / sent:.3f} (goal >= 0.9)")
    print(f"PRM tokens evaluated per scored step: {prm_evaluated / len(scored):.1f}; new step + template suffix: "
          f"{(step_tokens + suffix * len(scored)) / len(scored):.1f}; ratio "
          f"{prm_evaluated / (step_tokens + suffix * len(scored)):.2f} (goal <= 1.5)")
    print(f"re-scoring the whole prefix every step would evaluate {full / len(scored):.1f} tokens per step: "
          f"{full / max(prm_evaluated, 1):.1f}x more")
    print(f"search overhead (outside engine and PRM calls): {total - clock[0]:.2f} s of {total:.1f} s = "
          f"{(total - clock[0]) / total:.1%} (goal <= 10%)")


if __name__ == "__main__":
    main()
