"""Next-token-label PRMs: Math-Shepherd, RLHFlow and the CPU judge.

All three are "format → prompt ending right before the label token → P(good) renormalised over
{good, bad}" from `Engine.next_token_logprobs`, so one class serves them; the format and the label tokens
come from the PRM's config. The prompt for steps[:k+1] extends the prompt for steps[:k] (see
`formats`), so a prefix-caching engine (llama.cpp in-process, SGLang's radix cache) evaluates only the
newest step plus the format's suffix.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, Sequence

from ttslab.engines.base import Engine, TokenUsage
from ttslab.rewards.base import ScoreRequest, StepScores
from ttslab.rewards.formats import label_format


def single_token_id(engine: Engine, text: str, key: str) -> int:
    """The one token id of `text`; a label spread over several tokens cannot be read from one position."""
    ids = engine.tokenize(text)
    if len(ids) != 1:
        raise ValueError(
            f"prm.{key}={text!r} must be exactly one token of the PRM's vocabulary, "
            f"but it tokenizes to {len(ids)} tokens {ids}"
        )
    return ids[0]


# A text that starts with a word, as a PRM input does after its BOS.
_BOS_PROBE = "What is 1+1? First, 1+1=2."


def check_bos_tokenization(engine: Engine, bos: str) -> None:
    """Refuse a tokenizer on which `bos + text` (what the format writes, tokenized with nothing added) is not
    the BOS id followed by the ids of `text` (what the reference's `tokenizer.encode(text)` feeds).

    A sentencepiece tokenizer loaded as non-legacy (Metaspace `prepend_scheme: first`) drops the "▁" of the
    word after a special token: every Math-Shepherd input would differ from the reference's in its first
    word. Failing here, at start-up, keeps that from becoming silently wrong scores.
    """
    bos_ids = engine.tokenize(bos)
    if len(bos_ids) != 1:
        raise ValueError(f"prm.bos_token={bos!r} must be one special token of the PRM's tokenizer, but it "
                         f"tokenizes to {bos_ids}")
    after, alone = engine.tokenize(bos + _BOS_PROBE), engine.tokenize(_BOS_PROBE)
    if after != bos_ids + alone:
        raise ValueError(
            f"the PRM's tokenizer reads text after its BOS {bos!r} differently from text at the start "
            f"({after[:4]}... vs {(bos_ids + alone)[:4]}...), so its inputs would not be the reference's "
            "tokenizer.encode(text); for a sentencepiece (Llama/Mistral) tokenizer serve it with "
            '"legacy": true in its tokenizer_config.json'
        )


def renormalised_good_probability(logprob_good: float, logprob_bad: float) -> float:
    """P(good) / (P(good) + P(bad)), computed stably from log-probabilities."""
    if math.isinf(logprob_good) and math.isinf(logprob_bad):
        return 0.5  # neither label is possible: no information
    gap = logprob_bad - logprob_good
    if gap > 0:  # written so that exp never overflows
        return math.exp(-gap) / (1.0 + math.exp(-gap))
    return 1.0 / (1.0 + math.exp(gap))


class LogprobPRM:
    """A PRM whose step score is the probability of a "good" label token after a formatted prompt.

    Args:
        engine: any `Engine`; it must reuse the KV of a prompt's cached prefix for the cost to be ~the new step.
        format: a label format name of `ttslab.rewards.formats.LABEL_FORMATS` ("math_shepherd", "rlhflow", "judge").
        good_token, bad_token: label texts, each exactly one token of the engine's vocabulary.
        name: the PRM's name (records, tables).
        format_options: extra keyword arguments of the format function (system prompt, step tag, ...).
        bos_token: the BOS text the PRM's tokenizer starts its inputs with (`prm.bos_token`: "<s>" for
            Math-Shepherd's Mistral tokenizer, "<|begin_of_text|>" for RLHFlow's Llama-3.1 one); None: its
            inputs carry no BOS (Qwen). A format that takes `bos` writes it; engines add nothing.
    """

    def __init__(
        self,
        engine: Engine,
        format: str,
        good_token: str,
        bad_token: str,
        name: str = "",
        format_options: Mapping[str, Any] | None = None,
        bos_token: str | None = None,
    ) -> None:
        self.engine = engine
        self.name = name or format
        self._format = label_format(format)
        options = dict(format_options or {})
        accepted = inspect.signature(self._format).parameters
        unknown = sorted(set(options) - set(accepted) - {"question", "steps"})
        if unknown:
            raise ValueError(
                f"prm.format_options has keys {unknown} that format {format!r} does not take; "
                f"allowed: {sorted(set(accepted) - {'question', 'steps'})}"
            )
        if "good_token" in accepted:  # earlier turns of chat formats hold the good label
            options.setdefault("good_token", good_token)
        if "bos" in accepted:  # a per-tokenizer fact from the PRM's config, never a default of the format
            legacy = options.pop("bos", None)
            if legacy is not None and bos_token is not None and legacy != bos_token:
                raise ValueError(f"prm.format_options.bos={legacy!r} and prm.bos_token={bos_token!r} disagree; "
                                 "keep prm.bos_token only")
            options["bos"] = bos_token if bos_token is not None else (legacy or "")
        elif bos_token:
            raise ValueError(f"prm.bos_token={bos_token!r}, but format {format!r} writes no BOS; set "
                             "prm.bos_token=null or use a format that starts with the tokenizer's BOS")
        self._options = options
        if options.get("bos"):
            check_bos_tokenization(engine, options["bos"])
        self.good_id = single_token_id(engine, good_token, "good_token")
        self.bad_id = single_token_id(engine, bad_token, "bad_token")
        if self.good_id == self.bad_id:
            raise ValueError(f"prm.good_token={good_token!r} and prm.bad_token={bad_token!r} are the same token")

    def prompt(self, question: str, steps: Sequence[str]) -> str:
        """The text ending right before the label of the last of `steps`."""
        return self._format(question, steps, **self._options)

    def _score_prompts(self, prompts: list[str], affinity: list[str]) -> list[tuple[float, TokenUsage]]:
        results = self.engine.next_token_logprobs(prompts, [self.good_id, self.bad_id], affinity)
        if len(results) != len(prompts):
            raise RuntimeError(f"engine returned {len(results)} logprob results for {len(prompts)} prompts")
        return [
            (renormalised_good_probability(r.logprobs[self.good_id], r.logprobs[self.bad_id]), r.usage)
            for r in results
        ]

    def score_last(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        prompts = [self.prompt(r.question, r.steps) for r in requests]
        scored = self._score_prompts(prompts, [r.affinity for r in requests])
        return [StepScores(scores=[p], usage=usage) for p, usage in scored]

    def score_all(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        # One batch with every step prefix of every request; the prefixes of one request are adjacent and
        # in order, so each extends the previous one and the engine reuses its KV.
        prompts: list[str] = []
        affinity: list[str] = []
        for r in requests:
            for k in range(1, len(r.steps) + 1):
                prompts.append(self.prompt(r.question, r.steps[:k]))
                affinity.append(r.affinity)
        scored = iter(self._score_prompts(prompts, affinity))
        out = []
        for r in requests:
            scores, usage = [], TokenUsage()
            for _ in r.steps:
                p, u = next(scored)
                scores.append(p)
                usage = usage + u
            out.append(StepScores(scores=scores, usage=usage))
        return out

    def close(self) -> None:
        # The engine is owned by whoever built it (it may be shared with the policy).
        pass
