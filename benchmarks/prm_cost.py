"""PRM cost and CPU-judge discrimination (run under the model lock: `flock /work/model.lock python ...`).

1. Cost: the policy (embedded 0.5B) writes greedy solutions to a few bundled problems; the judge scores
   them step by step with `score_last`, as beam search does. Per scored step we compare the PRM tokens
   the engine evaluated with (new step tokens + template tokens of the appended turn), and with what a
   full re-scoring of the whole prefix at every step costs (what the public implementations do).
2. Discrimination: hand-made (correct, wrong) versions of one step on 12 simple problems; paired
   accuracy (correct scored higher) and AUC over all correct-vs-wrong pairs, per judge model.

    PYTHONPATH=. flock /work/model.lock python benchmarks/prm_cost.py --judges 0.5b,1.5b --problems 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from ttslab.problems import load_problems
from ttslab.engines.base import GenerationRequest, SamplingParams
from ttslab.engines.llamacpp import LlamaCppEngine
from ttslab.prompts import build_prompt
from ttslab.rewards.base import ScoreRequest
from ttslab.rewards.logprob import LogprobPRM

# (question, earlier steps, correct step, wrong step)
CASES = [
    ("Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?", (),
     "Tom has 3 × 12 = 36 apples.", "Tom has 3 × 12 = 15 apples."),
    ("Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?", ("Tom has 3 × 12 = 36 apples.",),
     "After eating 5, he has 36 − 5 = 31 apples left. The answer is \\boxed{31}.",
     "After eating 5, he has 36 − 5 = 41 apples left. The answer is \\boxed{41}."),
    ("A shirt costs $20 and is discounted by 25%. What is the sale price?", (),
     "The discount is 25% of $20, which is 0.25 × 20 = $5.", "The discount is 25% of $20, which is 0.25 × 20 = $8."),
    ("A shirt costs $20 and is discounted by 25%. What is the sale price?", ("The discount is 25% of $20, which is 0.25 × 20 = $5.",),
     "The sale price is 20 − 5 = $15, so the answer is \\boxed{15}.", "The sale price is 20 + 5 = $25, so the answer is \\boxed{25}."),
    ("What is 7 × 8 + 6?", (), "First, 7 × 8 = 56.", "First, 7 × 8 = 54."),
    ("What is 7 × 8 + 6?", ("First, 7 × 8 = 56.",),
     "Then 56 + 6 = 62, so the answer is \\boxed{62}.", "Then 56 + 6 = 64, so the answer is \\boxed{64}."),
    ("A train travels at 60 km/h for 2.5 hours. How far does it travel?", (),
     "Distance = speed × time = 60 × 2.5 = 150 km, so the answer is \\boxed{150}.",
     "Distance = speed × time = 60 × 2.5 = 120 km, so the answer is \\boxed{120}."),
    ("Sara reads 15 pages a day. How many days does she need to read 180 pages?", (),
     "She needs 180 ÷ 15 = 12 days, so the answer is \\boxed{12}.", "She needs 180 ÷ 15 = 15 days, so the answer is \\boxed{15}."),
    ("The sum of two numbers is 30 and their difference is 4. What is the larger number?", (),
     "Adding the two equations gives 2x = 34, so the larger number is x = 17.",
     "Adding the two equations gives 2x = 26, so the larger number is x = 13."),
    ("What is 15% of 80?", (), "15% of 80 is 0.15 × 80 = 12, so the answer is \\boxed{12}.",
     "15% of 80 is 0.15 × 80 = 1.2, so the answer is \\boxed{1.2}."),
    ("A rectangle is 9 cm long and 4 cm wide. What is its perimeter?", (),
     "The perimeter is 2 × (9 + 4) = 26 cm, so the answer is \\boxed{26}.",
     "The perimeter is 9 × 4 = 36 cm, so the answer is \\boxed{36}."),
    ("A baker makes 4 trays of 24 muffins and sells 70 of them. How many muffins are left?", ("He makes 4 × 24 = 96 muffins.",),
     "He has 96 − 70 = 26 muffins left, so the answer is \\boxed{26}.",
     "He has 96 − 70 = 36 muffins left, so the answer is \\boxed{36}."),
]


def make_engine(size: str) -> LlamaCppEngine:
    return LlamaCppEngine(f"embedded:qwen2.5-coder-{size}", n_threads=2, max_sequences=4, n_ctx_per_sequence=4096)


def judge(engine) -> LogprobPRM:
    return LogprobPRM(engine, "judge", "Yes", "No", name="cpu-judge")


def policy_solutions(n_problems: int) -> list[tuple[str, list[str]]]:
    engine = make_engine("0.5b")
    problems = load_problems("bundled", limit=n_problems)
    params = SamplingParams(temperature=0.0, max_tokens=512)
    out = engine.generate([GenerationRequest(build_prompt("qwen2.5", p.question), params) for p in problems])
    engine.close()
    solutions = []
    for p, c in zip(problems, out):
        steps = [s + "\n\n" for s in c.text.split("\n\n") if s.strip()]
        solutions.append((p.question, steps))
    return solutions


def cost(size: str, solutions) -> dict:
    engine = make_engine(size)
    prm = judge(engine)
    rows = []
    start = time.perf_counter()
    for question, steps in solutions:
        prm.score_last([ScoreRequest("Warm-up so that the first step pays for its own prefix?", ("x",))])
        previous = 0
        for k in range(1, len(steps) + 1):
            usage = prm.score_last([ScoreRequest(question, tuple(steps[:k]))])[0].usage
            prompt_tokens = len(engine.tokenize(prm.prompt(question, steps[:k])))
            step_tokens = len(engine.tokenize(steps[k - 1].strip()))
            appended = prompt_tokens - previous  # new step + template of its turn (k = 1: + system/question)
            template = appended - step_tokens
            if k > 1:  # the first step pays for the system prompt and the question once
                rows.append((usage.evaluated_tokens, step_tokens, template, prompt_tokens))
            previous = prompt_tokens
    seconds = time.perf_counter() - start
    engine.close()
    base = [s + t for _, s, t, _ in rows]
    return {
        "scored steps (k>1)": len(rows),
        "mean new-step tokens": statistics.mean(s for _, s, _, _ in rows),
        "mean template tokens": statistics.mean(t for _, _, t, _ in rows),
        "incremental evaluated / (step+template)": statistics.mean(e / b for (e, *_), b in zip(rows, base)),
        "max incremental ratio": max(e / b for (e, *_), b in zip(rows, base)),
        "full re-score evaluated / (step+template)": statistics.mean(p / b for (*_, p), b in zip(rows, base)),
        "full / incremental total tokens": sum(p for *_, p in rows) / sum(e for e, *_ in rows),
        "judge seconds per scored step (all k)": seconds / sum(len(s) for _, s in solutions),
    }


def discrimination(size: str) -> dict:
    engine = make_engine(size)
    prm = judge(engine)
    start = time.perf_counter()
    good = [prm.score_last([ScoreRequest(q, e + (c,))])[0].scores[0] for q, e, c, _ in CASES]
    bad = [prm.score_last([ScoreRequest(q, e + (w,))])[0].scores[0] for q, e, _, w in CASES]
    seconds = (time.perf_counter() - start) / (2 * len(CASES))
    engine.close()
    auc = sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))
    return {
        "paired correct > wrong": f"{sum(g > b for g, b in zip(good, bad))}/{len(CASES)}",
        "AUC": round(auc, 3),
        "mean P(Yes) correct / wrong": f"{statistics.mean(good):.3f} / {statistics.mean(bad):.3f}",
        "seconds per scored step": round(seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judges", default="0.5b", help="comma-separated: 0.5b,1.5b")
    parser.add_argument("--problems", type=int, default=3)
    args = parser.parse_args()
    solutions = policy_solutions(args.problems)
    print(f"policy solutions: {len(solutions)} problems, {sum(len(s) for _, s in solutions)} steps")
    for size in args.judges.split(","):
        print(f"\n== judge qwen2.5-coder-{size}")
        for key, value in {**cost(size, solutions), **discrimination(size)}.items():
            print(f"  {key:45s} {value:.3f}" if isinstance(value, float) else f"  {key:45s} {value}")


if __name__ == "__main__":
    main()
