"""The engine protocol: what the search loop and the PRMs need from a language-model backend.

Two backends implement it: `llamacpp.LlamaCppEngine` (CPU, in-process) and `sglang.SGLangEngine`
(GPU, HTTP client of SGLang's native `/generate`). Chat templating and step bookkeeping stay on the
client: engines receive raw prompt text and return raw continuations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

# "step": a stop string matched (the step delimiter); "eos": the model's end-of-generation token;
# "length": max_tokens (or the context) ran out before either.
FinishReason = Literal["step", "eos", "length"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7  # 0.0 means greedy
    top_p: float = 1.0
    top_k: int = -1  # <= 0 disables top-k
    max_tokens: int = 2048
    stop: tuple[str, ...] = ()
    seed: int = 0
    # benchmarks only: an end-of-generation token does not end the sequence (llama.cpp's --ignore-eos),
    # so every arm of a throughput comparison generates exactly max_tokens
    ignore_eos: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """One sample. Requests whose prompts are equal should be adjacent in a batch: they share the prefix."""

    prompt: str
    params: SamplingParams
    # Requests of one problem carry the same key: a multi-server engine sends them to one server
    # so they share its prefix cache.
    affinity: str = ""


@dataclass
class TokenUsage:
    """Token accounting for one request (or a sum of them)."""

    prompt_tokens: int = 0  # tokens of the prompt as sent
    cached_tokens: int = 0  # of those, reused from the prefix cache (not recomputed)
    completion_tokens: int = 0  # tokens generated

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens the engine actually computed."""
        return self.prompt_tokens - self.cached_tokens

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass
class Completion:
    # Generated text; a matched stop string is kept at its end (SGLang's `no_stop_trim` semantics),
    # so prompt + text is exactly the next step's prefix.
    text: str
    finish: FinishReason
    usage: TokenUsage = field(default_factory=TokenUsage)
    token_ids: list[int] = field(default_factory=list)
    # token_logprobs[i]: natural-log probability of token_ids[i] under the model's raw next-token
    # distribution, i.e. the softmax over the FULL vocabulary of the unscaled logits (temperature 1,
    # before top-k / top-p / temperature are applied), given the prompt and token_ids[:i]. It is the
    # same distribution `Engine.next_token_logprobs` reports. Empty when the engine cannot provide it.
    token_logprobs: list[float] = field(default_factory=list)
    # The max_new_tokens the engine sent, where it had to lower the request's max_tokens to fit the model's
    # context (0: the prompt alone filled it); None: sent as asked. Records keep both (the clamp is visible).
    max_new_tokens_sent: int | None = None


@dataclass
class TokenScores:
    """Log-probabilities of chosen token ids at the position right after a prompt."""

    logprobs: dict[int, float]
    usage: TokenUsage = field(default_factory=TokenUsage)


@runtime_checkable
class Engine(Protocol):
    """A text-completion backend with prefix reuse."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Sample one continuation per request, in order. Batched and prefix-shared by the engine."""
        ...

    def next_token_logprobs(
        self, prompts: Sequence[str], token_ids: Sequence[int], affinity: Sequence[str] | None = None
    ) -> list[TokenScores]:
        """For each prompt, the log-probabilities (full-vocabulary softmax) of `token_ids` as the next token.

        This is all that logprob PRMs (Math-Shepherd, RLHFlow) and the CPU judge need; prompts that extend
        an earlier prompt reuse its KV, so only the new suffix is evaluated.
        """
        ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS added, special tokens parsed)."""
        ...

    def close(self) -> None: ...
