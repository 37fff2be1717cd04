"""When a cached prompt changes a sample, and when it does not (the CPU engine on the real embedded model).

With one KV stream per sequence (engine.kv_unified=false, the default) a request with the same seed gives the
same tokens cold (a fresh engine), warm (its whole prompt cached), resumed (a fresh engine meeting only some of the
requests) and whatever shares its batch: every decode has 2-63 rows and a prompt's last token is always
decoded anew (ttslab/engines/llamacpp.py, _MIN_ROWS/_MAX_ROWS). Not yet exact, and pinned here as known
limits (xfail, strict=False, so a fix shows up as XPASS): a prompt whose prefix was cached by other decodes
(a search step's earlier tokens), and the shared pool (kv_unified=true, no longer the default), whose freed
cells put a sequence's KV in another order. On the old engine all of these differed (measured on an AVX-512 EPYC: warm
2 of 9 samples, partially cached 4 of 9, alone vs batched 3 of 3). .ci/run runs this file on the native
build and on an AVX2-only build of llama-cpp-python.
"""

from __future__ import annotations

import pytest

from ttslab.engines.base import GenerationRequest, SamplingParams
from ttslab.prompts import build_prompt

pytestmark = pytest.mark.model

QUESTIONS = [
    "What is 12 + 30?",
    "A farm has 12 cows and 9 chickens. How many legs do the animals have in total?",
    "Find the remainder when $2^{10}$ is divided by 7.",
]
SEEDS = (1, 2, 3)
TOKENS = 40


SHARED_POOL_NOT_EXACT = pytest.mark.xfail(
    strict=False, reason="the shared KV pool reuses freed cells, so a sequence's cells can lie out of position "
                         "order and llama.cpp's flash attention sums them in cell order (README: the engine)")


@pytest.fixture(params=[False, pytest.param(True, marks=SHARED_POOL_NOT_EXACT)], ids=["streams", "shared_pool"])
def fresh(request):
    """A maker of fresh engines with one KV layout (engine.kv_unified)."""
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[cpu]")')
    from ttslab.engines.llamacpp import LlamaCppEngine

    return lambda: LlamaCppEngine("embedded:qwen2.5-coder-0.5b", max_sequences=8, n_ctx_per_sequence=1024,
                                  kv_unified=request.param)


def sample(prompt: str, seed: int, max_tokens: int = TOKENS) -> GenerationRequest:
    return GenerationRequest(prompt, SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=seed))


def tokens(engine, requests) -> list[list[int]]:
    return [c.token_ids for c in engine.generate(requests)]


def test_cold_warm_and_resumed_samples_are_the_same_tokens(fresh):
    prompts = [build_prompt("qwen2.5", q) for q in QUESTIONS]
    reqs = [sample(p, s) for p in prompts for s in SEEDS]
    with fresh() as e:
        cold = tokens(e, reqs)
        warm = tokens(e, reqs)
        usage = e.generate(reqs[:1])[0].usage
        again = tokens(e, reqs[:1])  # warm once more, alone in the batch
    assert usage.cached_tokens == usage.prompt_tokens - 1  # all but the last token came from the cache
    assert warm == cold and again == cold[:1]
    # the case: one prompt, seed 1, three times in a row on one engine
    with fresh() as e:
        runs = [tokens(e, [reqs[0]])[0] for _ in range(3)]
    assert runs == [cold[0]] * 3
    # resumed: a fresh engine that meets only the last problem's requests (the others are finished)
    with fresh() as e:
        assert tokens(e, reqs[-len(SEEDS):]) == cold[-len(SEEDS):]


@pytest.mark.xfail(strict=False, reason="measured 2 of 9 samples differ with streams: a per-stream batch whose "
                   "sequence ids are not consecutive is split by llama.cpp into ubatches of its own, some of one row")
def test_a_partially_cached_prompt_samples_as_a_cold_one(fresh):
    """A search step's prompt extends the previous one: its prefix is cached from the prompt and from the
    generated step tokens (their KV computed while sampling), or from another prompt sharing the question."""
    with fresh() as e:
        steps = [c.text for c in e.generate([GenerationRequest(build_prompt("qwen2.5", q), SamplingParams(
            temperature=0.0, max_tokens=64, stop=("\n\n",))) for q in QUESTIONS])]
        follow = [build_prompt("qwen2.5", q, [s]) for q, s in zip(QUESTIONS, steps)]
        reqs = [sample(p, s) for p in follow for s in SEEDS]
        partial = e.generate(reqs)
    assert all(c.usage.cached_tokens > 0.6 * c.usage.prompt_tokens for c in partial[::len(SEEDS)])
    with fresh() as e:
        assert tokens(e, reqs) == [c.token_ids for c in partial]
    # the reverse: a longer prompt cached first, then a prompt that is a prefix of it
    with fresh() as e:
        tokens(e, reqs)
        shorter = [sample(build_prompt("qwen2.5", q), s) for q in QUESTIONS for s in SEEDS]
        prefix_cached = tokens(e, shorter)
    with fresh() as e:
        assert tokens(e, shorter) == prefix_cached


def test_a_sample_does_not_depend_on_what_shares_its_batch(fresh):
    prompts = [build_prompt("qwen2.5", q) for q in QUESTIONS]
    with fresh() as e:
        together = tokens(e, [sample(p, 5) for p in prompts])
    for p, expected in zip(prompts, together):
        with fresh() as e:
            assert tokens(e, [sample(p, 5)])[0] == expected  # alone: every decode of 1 row, padded to 2


PLAN_TINY = ["dataset.limit=2", "engine.max_sequences=8", "engine.n_ctx_per_sequence=1024", "progress=false"]
BON = "{name: best_of_n, budgets: [2], max_tokens: 48}"
BEAM = "{name: beam_search, budgets: [2], beam_width: 2, max_tokens: 96, max_step_tokens: 48, max_steps: 2}"


def _texts(run_dir, method):
    from ttslab.results import read_records

    return {r["problem_id"]: [c["text"] for c in r["candidates"]] for r in read_records(run_dir) if r["method"] == method}


@pytest.mark.xfail(strict=False, reason="a search step's prompt is partially cached (above); Best-of-N alone vs after "
                   "CoT is the warm case, exact with the default streams")
def test_a_method_gives_the_same_samples_alone_and_after_other_methods(tmp_path):
    """Inside a plan, CoT has cached the prompts before Best-of-N and beam search meet them (the quickstart's
    order); run alone they meet them cold. A reader reproducing one row alone must get that row."""
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[cpu]")')
    from ttslab.runner import run_experiment

    plan = run_experiment([*PLAN_TINY, f"plan=[{{name: cot, max_tokens: 48}}, {BON}, {BEAM}]",
                           f"run_dir={tmp_path / 'plan'}"])
    for method, item in (("best_of_n", BON), ("beam_search", BEAM)):
        alone = run_experiment([*PLAN_TINY, f"plan=[{item}]", f"run_dir={tmp_path / method}"])
        assert _texts(alone, method) == _texts(plan, method), method
