"""The shape of the load: token lengths drawn from a workload, and prompts synthesised to those lengths.

Prompts are not stored in the ledger, only their token counts, so the benchmark writes its own text. It
cannot know the server's tokenizer, so it calibrates: two probe prompts of known word counts give the
server's ``prompt_tokens`` per word and the chat template's fixed overhead (see :class:`PromptSynth`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from modelyard.benchmark.errors import BenchmarkError

#: Short common English words: one token each in the BPE vocabularies of every major open model family.
_VOCABULARY = (
    "the of and to in is it that was for on are as with his they at be this from have or by one had not "
    "but what all were when we there can an your which their said if do will each about how up out them "
    "then she many some so these would other into has more her two like him see time could no make than "
    "first been its who now people my made over did down only way find use may water long little very "
    "after words called just where most know get through back much before go good new write our used me "
    "man too any day same right look think also around another came come work three word must because does "
    "part even place well such here take why things help put years different away again off went old"
)
_WORDS = tuple(_VOCABULARY.split())


#: Words drawn one by one at the start of each prompt (see :meth:`PromptSynth.text`).
_RANDOM_HEAD = 16


class _RandomText:
    """A long text of random words, made on first use (and longer when a prompt needs it), to slice."""

    def __init__(self) -> None:
        self.text = ""
        #: Where each word starts in :attr:`text`, plus one past the end.
        self.starts: list[int] = [0]

    def slice(self, words: int, rng: random.Random) -> str:
        if len(self.starts) <= 2 * words:
            self._grow(max(1 << 16, 4 * words))
        first = rng.randrange(len(self.starts) - words)
        return self.text[self.starts[first] : self.starts[first + words] - 1]

    def _grow(self, count: int) -> None:
        words = random.Random(count).choices(_WORDS, k=count)
        self.text = " ".join(words) + " "
        self.starts = [0]
        for word in words:
            self.starts.append(self.starts[-1] + len(word) + 1)


_RANDOM_TEXT = _RandomText()


@dataclass(frozen=True, slots=True)
class TokenLengths:
    """Paired (input, output) token counts to draw requests from; pairs keep lengths' correlation."""

    pairs: tuple[tuple[int, int], ...]
    source: str

    def __post_init__(self) -> None:
        if not self.pairs:
            raise BenchmarkError(f"no token lengths in {self.source}")

    def draw(self, rng: random.Random) -> tuple[int, int]:
        return self.pairs[rng.randrange(len(self.pairs))]

    @property
    def means(self) -> tuple[float, float]:
        n = len(self.pairs)
        return sum(p[0] for p in self.pairs) / n, sum(p[1] for p in self.pairs) / n


def fixed_lengths(input_tokens: int, output_tokens: int) -> TokenLengths:
    return TokenLengths(((input_tokens, output_tokens),), f"fixed {input_tokens}/{output_tokens} tokens")


def lengths_from_trace(path: str | Path) -> TokenLengths:
    """A JSONL file, one ``{"input_tokens": int, "output_tokens": int}`` object per line."""
    pairs = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise BenchmarkError(f"cannot read trace file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            pairs.append((int(row["input_tokens"]), int(row["output_tokens"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise BenchmarkError(
                f'{path}:{number}: expected {{"input_tokens": int, "output_tokens": int}}'
            ) from None
    return TokenLengths(_usable(pairs), str(path))


def lengths_from_ledger(url: str, workload: str, limit: int = 20_000) -> TokenLengths:
    """The measured token counts of ``workload``'s successful chat requests in the ledger at ``url``."""
    from modelyard.ledger import RequestFilter, open_store

    try:
        store = open_store(url)
    except ValueError as exc:
        raise BenchmarkError(str(exc)) from None
    try:
        rows = store.query(RequestFilter(workload=workload, status=200), limit=limit)
    finally:
        store.close()
    pairs = [
        (r.input_tokens, r.output_tokens) for r in rows if r.endpoint == "chat" and not r.usage_estimated
    ]
    if not _usable(pairs):
        raise BenchmarkError(
            f"the ledger {url} has no successful chat requests for workload '{workload}'; "
            "check the name with `modelyard ledger summary`"
        )
    return TokenLengths(_usable(pairs), f"ledger workload '{workload}' ({len(pairs)} requests)")


def _usable(pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    # A request needs at least one prompt token and one answer token to be measured.
    return tuple((max(i, 1), o) for i, o in pairs if o > 0)


class PromptSynth:
    """Writes prompt text of a target token length: ``words = (tokens - overhead) / tokens_per_word``."""

    def __init__(self, tokens_per_word: float = 1.0, overhead: float = 0.0) -> None:
        self.tokens_per_word = tokens_per_word
        self.overhead = overhead

    @classmethod
    def calibrated(cls, words: tuple[int, int], prompt_tokens: tuple[float, float]) -> PromptSynth:
        """From two probes: ``words[i]`` words were counted as ``prompt_tokens[i]`` tokens by the server."""
        slope = (prompt_tokens[1] - prompt_tokens[0]) / (words[1] - words[0])
        if slope <= 0:
            return cls()  # a server that does not count prompts: fall back to one token per word
        return cls(slope, prompt_tokens[0] - slope * words[0])

    def words_for(self, tokens: int) -> int:
        return max(1, round((tokens - self.overhead) / self.tokens_per_word))

    def text(self, tokens: int, rng: random.Random) -> str:
        """Random words, so no two prompts share a prefix a server's prefix cache could reuse.

        Only the first :data:`_RANDOM_HEAD` words are drawn one by one; the rest is a slice, at a random
        word, of a long random text made once. Prefix caches (vLLM's, SGLang's) reuse only a whole
        identical prefix, so the random head is enough, and a long prompt costs one slice, not one draw
        per word: the load generator writes thousands of prompts a second.
        """
        words = self.words_for(tokens)
        head = " ".join(rng.choices(_WORDS, k=min(words, _RANDOM_HEAD)))
        if words <= _RANDOM_HEAD:
            return head
        return head + " " + _RANDOM_TEXT.slice(words - _RANDOM_HEAD, rng)

    @staticmethod
    def words(count: int, rng: random.Random) -> str:
        return " ".join(rng.choices(_WORDS, k=count))
