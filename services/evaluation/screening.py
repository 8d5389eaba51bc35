"""Screening rules: each looks at a submitted proposal and says what, if anything, is wrong.

Rules are plain functions of (proposal, policy) -> failure reason or None, so a new rule is a
new function in RULES; the policy (caps, eligible environments) comes from configuration. The
duplicate rule also looks at the other open proposals, so it takes them as a third argument:
the candidates the store finds by `title_keys` and `within_reach` (below), not every open proposal.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from difflib import SequenceMatcher
from hashlib import blake2b
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator
from rapidfuzz.distance import LCSseq

from kokeilu.contracts.evaluation import RuleFailure
from kokeilu.contracts.proposals import Environment, FocusArea, ProposalSubmitted

DEFAULT_BUDGET_CAPS_EUR: dict[FocusArea, float] = {
    FocusArea.smart_mobility: 250_000,
    FocusArea.learning: 100_000,
    FocusArea.sustainable_development: 150_000,
}


class ScreeningPolicy(BaseModel):
    """What the programme accepts. Defaults are the local ones; production sets its own."""

    budget_cap_eur: dict[FocusArea, float] = Field(default_factory=lambda: dict(DEFAULT_BUDGET_CAPS_EUR))
    eligible_environments: set[Environment] = Field(default_factory=lambda: set(Environment))
    min_summary_chars: int = 40
    # Titles at least this similar (difflib ratio of normalised titles) to an open proposal's
    # fail the duplicate rule; null switches the rule off.
    duplicate_title_similarity: float | None = Field(default=0.9, ge=0, le=1)

    @field_validator("budget_cap_eur", mode="before")
    @classmethod
    def _keep_the_other_default_caps(cls, caps: Any) -> Any:
        # Configuring the cap of one focus area must not leave the others without a cap.
        if not isinstance(caps, dict):
            return caps
        given = {k.value if isinstance(k, FocusArea) else k: v for k, v in caps.items()}
        return {**{k.value: v for k, v in DEFAULT_BUDGET_CAPS_EUR.items()}, **given}


Rule = Callable[[ProposalSubmitted, ScreeningPolicy], "str | None"]


def completeness(p: ProposalSubmitted, policy: ScreeningPolicy) -> str | None:
    missing = []
    if not (p.hypothesis or "").strip():
        missing.append("a hypothesis")
    if not p.kpis:
        missing.append("at least one KPI with baseline and target")
    if len(p.summary.strip()) < policy.min_summary_chars:
        missing.append(f"a summary of at least {policy.min_summary_chars} characters")
    return ("missing " + ", ".join(missing)) if missing else None


def budget_cap(p: ProposalSubmitted, policy: ScreeningPolicy) -> str | None:
    cap = policy.budget_cap_eur.get(p.focus_area)
    if cap is not None and p.budget_eur > cap:
        return f"requested budget {p.budget_eur:,.0f} EUR exceeds the {p.focus_area.value} cap of {cap:,.0f} EUR"
    return None


def eligible_environment(p: ProposalSubmitted, policy: ScreeningPolicy) -> str | None:
    if p.environment not in policy.eligible_environments:
        allowed = ", ".join(sorted(e.value for e in policy.eligible_environments))
        return f"test environment {p.environment.value} is not open for pilots now (open: {allowed})"
    return None


RULES: dict[str, Rule] = {
    "completeness": completeness,
    "budget_cap": budget_cap,
    "eligible_environment": eligible_environment,
}


def normalise_title(title: str) -> str:
    text = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


# Near-duplicate candidates: MinHash LSH over the character trigrams of the normalised title,
# then an exact bound on difflib's ratio from each candidate's letter counts.
#
# Comparing a new title with every open one costs O(open proposals) per screening (about 200 ms
# each with 10,000 open). Instead each open title is stored under KEY_BANDS + 1 keys: one per
# band of KEY_ROWS MinHash values of its trigram set, and one of the whole normalised title.
# A new title looks up its own keys; the exact rule (`duplicate`) judges only the titles that
# share one and that `within_reach` cannot rule out.
#
# Titles identical once normalised always share the exact key. Two titles whose trigram sets
# have Jaccard similarity J share a band with probability 1 - (1 - J**KEY_ROWS)**KEY_BANDS:
# 0.99999 at J = 0.8 (one typo in a 30-letter title), 0.987 at J = 0.67 (two typos in it),
# 0.91 at J = 0.6. A word added, dropped or changed keeps J higher still in titles of municipal
# length. A pair that reaches ratio 0.9 with many scattered one-letter changes can have J near
# 0.5 and be missed (0.61 found): the index trades that for cost. tests/unit/evaluation/test_screening.py
# checks 2,265 generated resubmissions (ratio >= 0.9): every one shares a key.
#
# Sharing a band is not rare among titles that are merely alike: titles built on the same
# pattern (topic, kind of pilot, place, partner) have J of 0.3-0.5 and share one with
# probability 0.07-0.6, so their number grows with the open proposals (about 180 per screening
# with 100,000 open in bench/screening.py, whose titles are such; no band scheme of sensible
# size separates them from the resubmissions above, down to J = 0.67). Each key row therefore
# also holds its title's normalised length and letter counts (`title_profile`): the store
# leaves in the database the rows of titles too short or too long (`lengths_within_reach`),
# and `within_reach` drops, before any title is read, the candidates whose counts prove the
# ratio below the threshold: difflib's ratio is 2 * matches / (both lengths), and matches never
# exceed the letters the two titles have in common (difflib's own quick_ratio bound; here
# counted in PROFILE_BUCKETS classes, which can only count more in common). Neither drops a
# duplicate, so the rule finds what it found without them; about 3 of the 180 remain, and
# `duplicate` bounds those by their longest common subsequence before difflib's ratio.
KEY_BANDS, KEY_ROWS = 30, 5
_P = np.uint64(4294967311)  # a prime above 2**32: (a*x + b) mod P are independent permutations
_seeds = random.Random(20261128)
_A = np.array([_seeds.randrange(1, 1 << 31) for _ in range(KEY_BANDS * KEY_ROWS)], dtype=np.uint64)[:, None]
_B = np.array([_seeds.randrange(0, 1 << 32) for _ in range(KEY_BANDS * KEY_ROWS)], dtype=np.uint64)[:, None]


def _hash63(data: bytes, salt: int) -> int:
    return int.from_bytes(blake2b(data, digest_size=8, salt=salt.to_bytes(4, "big")).digest(), "big") >> 1


def title_keys(title: str) -> list[int]:
    """The index keys of a title (positive 63-bit integers): one per LSH band, then the exact key.
    Changing KEY_BANDS, KEY_ROWS or the seeds changes every key: the stored ones must then be
    rebuilt (as migration 0006 rebuilds them)."""
    return keys_of(normalise_title(title))


def keys_of(normalised: str) -> list[int]:
    """title_keys of a title already normalised."""
    grams = {normalised[i : i + 3] for i in range(max(1, len(normalised) - 2))}
    x = np.array([int.from_bytes(blake2b(g.encode(), digest_size=4).digest(), "big") for g in grams], dtype=np.uint64)
    signature = ((_A * x[None, :] + _B) % _P).min(axis=1).reshape(KEY_BANDS, KEY_ROWS)
    keys = [_hash63(band.tobytes(), i) for i, band in enumerate(signature)]
    keys.append(_hash63(normalised.encode(), KEY_BANDS))
    return keys


# A normalised title's letters in classes: a space, a to z, ä, ö, å, a digit, anything else.
PROFILE_BUCKETS = 32
_FULL = 255  # a count stored as 255 is "255 or more"
_BUCKET = {" ": 0, "ä": 27, "ö": 28, "å": 29} | {chr(96 + i): i for i in range(1, 27)}


def _bucket(char: str) -> int:
    return _BUCKET.get(char, 30 if char.isdigit() else 31)


def title_profile(title: str) -> tuple[int, bytes]:
    """(length, letter counts) of the normalised title: what `within_reach` bounds the ratio by.
    The counts are PROFILE_BUCKETS bytes, each at most 255 (a full one means 255 or more)."""
    return profile_of(normalise_title(title))


def profile_of(normalised: str) -> tuple[int, bytes]:
    """title_profile of a title already normalised."""
    counts = [0] * PROFILE_BUCKETS
    for char in normalised:
        counts[_bucket(char)] += 1
    return len(normalised), bytes(min(c, _FULL) for c in counts)


def lengths_within_reach(length: int, similarity: float) -> tuple[int, int]:
    """(shortest, longest) normalised length a title may have and still reach `similarity` with
    a title of `length` (difflib's real_quick_ratio, 2 * shorter / both lengths), a letter wider
    on each side than exact arithmetic says."""
    if similarity <= 0:
        return 0, _LONGEST
    longest = length * (2 - similarity) / similarity
    return (
        max(0, math.floor(similarity * length / (2 - similarity)) - 1),
        _LONGEST if longest >= _LONGEST else math.ceil(longest) + 1,
    )


_LONGEST = (1 << 31) - 1  # no title is longer (and a 32-bit INTEGER column holds it)


def within_reach(profile: tuple[int, bytes], others: Sequence[tuple[int, bytes]], similarity: float) -> list[bool]:
    """For each of `others` (title_profile of each), whether its title may reach `similarity`
    (difflib ratio of the normalised titles) with the title of `profile`; False only when it
    cannot: 2 * (letters in common, counted per class) / (both lengths) is below `similarity`."""
    if not others:
        return []
    reach: list[bool] = reachable(
        profile, [n for n, _ in others], b"".join([c for _, c in others]), similarity
    ).tolist()
    return reach


def reachable(profile: tuple[int, bytes], lengths: Sequence[int], counts: bytes, similarity: float) -> np.ndarray:
    """within_reach for profiles given as their lengths and their letter counts one after
    another (PROFILE_BUCKETS bytes each): a boolean array, one per length."""
    if not lengths:
        return np.zeros(0, dtype=bool)
    length, mine_counts = profile
    theirs = np.frombuffer(counts, dtype=np.uint8).reshape(len(lengths), PROFILE_BUCKETS)
    mine = np.frombuffer(mine_counts, dtype=np.uint8)
    if mine.max() < _FULL and theirs.max() < _FULL:
        common = np.minimum(theirs, mine).sum(axis=1, dtype=np.int64)
    else:  # a full count is unknown above 255: taken as unbounded, its class bounds nothing
        unbounded = 1 << 30
        common = np.minimum(
            np.where(theirs == _FULL, unbounded, theirs.astype(np.int64)),
            np.where(mine == _FULL, unbounded, mine.astype(np.int64)),
        ).sum(axis=1)
    total = np.asarray(lengths, dtype=np.int64) + length
    # difflib's ratio is 2.0 * matches / total (1.0 for two empty titles): the same sum here.
    bound = np.where(total > 0, 2.0 * common / np.maximum(total, 1), 1.0)
    return bound >= similarity


def index_rows(proposal_id: str, title: str) -> list[dict[str, Any]]:
    """The rows that index an open proposal's title (the store's title_keys table): one per
    distinct key, each with the title's profile."""
    normalised = normalise_title(title)
    length, counts = profile_of(normalised)
    return index_rows_of(proposal_id, length, counts, keys_of(normalised))


def index_rows_of(proposal_id: str, length: int, counts: bytes, keys: Iterable[int]) -> list[dict[str, Any]]:
    """index_rows of a title whose profile and keys are known."""
    return [{"key": k, "proposal_id": proposal_id, "length": length, "profile": counts} for k in sorted(set(keys))]


def duplicate(p: ProposalSubmitted, policy: ScreeningPolicy, open_proposals: Iterable[tuple[str, str]]) -> str | None:
    """Near-identical title to an open proposal (id, title) other than this one."""
    if policy.duplicate_title_similarity is None:
        return None
    threshold = policy.duplicate_title_similarity
    title = normalise_title(p.title)
    matcher = SequenceMatcher(None)
    matcher.set_seq2(title)  # difflib caches what it learns about seq2
    best = None
    for other_id, other_title in open_proposals:
        if other_id == p.proposal_id:
            continue
        other = normalise_title(other_title)
        matcher.set_seq1(other)
        # Upper bounds of the ratio skip most titles without the full comparison: difflib's
        # quickest (lengths), then the longest common subsequence (difflib's matching blocks are
        # a common subsequence; rapidfuzz's LCSseq, bit-parallel in C++, about a hundredth of
        # the cost of ratio()). The subsequence is never longer than the letters in common, so
        # difflib's quick_ratio (which counts those) would rule out nothing more.
        if matcher.real_quick_ratio() < threshold:
            continue
        if 2.0 * LCSseq.similarity(title, other) / (len(title) + len(other)) < threshold:
            continue
        ratio = matcher.ratio()
        if ratio >= threshold and (best is None or ratio > best[0]):
            best = (ratio, other_id, other_title)
    if best is None:
        return None
    return f"title is near-identical ({best[0]:.0%}) to open proposal {best[1]} ({best[2]!r})"


def screen(
    proposal: ProposalSubmitted, policy: ScreeningPolicy, open_proposals: Iterable[tuple[str, str]] = ()
) -> list[RuleFailure]:
    """Every failed rule, with its reason; an empty list means the proposal passes."""
    failures = []
    for name, rule in RULES.items():
        reason = rule(proposal, policy)
        if reason:
            failures.append(RuleFailure(rule=name, reason=reason))
    reason = duplicate(proposal, policy, open_proposals)
    if reason:
        failures.append(RuleFailure(rule="duplicate", reason=reason))
    return failures
