"""Content-based recommendations: pure scoring, no I/O (the queries live in selectors.py).

A profile is built from the caller's recent CONFIRMED/COMPLETED bookings, the most recent
weighing most (RECENCY_DECAY per step back). Each candidate item scores

    W_ORGANIZER * share of the profile with the same organizer
  + W_CATEGORY  * share of the profile in the same category
  + W_TAGS      * mean profile share of the candidate's tags
  + W_LOCATION  * share of the profile at the same location
  + W_TEXT      * cosine(profile TF-IDF vector, candidate TF-IDF vector)

where a "share" is the recency-weighted fraction of the booked items having that feature
(0..1). TF-IDF runs over the words of name + description (stop words removed, the name's words
counted twice), with IDF taken over the candidates and the booked items together, so words that
every item uses ("event", "session") count for little. Highest score first, ties by start time.
"""

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

W_ORGANIZER = 3.0
W_CATEGORY = 2.5
W_TAGS = 2.0
W_LOCATION = 1.0
W_TEXT = 2.0
RECENCY_DECAY = 0.95
NAME_WORD_WEIGHT = 2
MIN_SHARE_IN_REASON = 1e-9
REASON_WORDS = 3

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
you your yours yourself yourselves via per new get let us also it's i'm you're we'll
""".split())

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)


@dataclass(frozen=True)
class ItemFeatures:
    """What the recommender knows of an item (booked or candidate)."""

    id: int
    name: str
    description: str
    organizer_id: int
    category: str | None
    tags: tuple[str, ...]
    location: str
    start_time: datetime
    popularity: int = 0


@dataclass
class Profile:
    """Recency-weighted shares of each feature value over the booked items, plus a text vector."""

    total: float = 0.0
    organizers: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    tags: Counter = field(default_factory=Counter)
    locations: Counter = field(default_factory=Counter)
    terms: dict[str, float] = field(default_factory=dict)
    # feature key -> name of the most recent booked item having it (for the reason text)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def share(self, counter: Counter, key) -> float:
        return counter[key] / self.total if self.total and key is not None else 0.0


@dataclass(frozen=True)
class Recommendation:
    item_id: int
    score: float
    reason: str


def tokenize(text: str) -> list[str]:
    words = (w.lower().replace("’", "'") for w in _WORD.findall(text or ""))
    return [w for w in words if w not in STOP_WORDS and len(w) > 1 and not w.isdigit()]


def _norm(value: str | None) -> str | None:
    value = " ".join((value or "").split()).casefold()
    return value or None


def _tag_set(item: ItemFeatures) -> set[str]:
    return {t for t in (_norm(tag) for tag in item.tags) if t}


def _term_counts(item: ItemFeatures) -> Counter:
    counts = Counter(tokenize(item.description))
    for word in tokenize(item.name):
        counts[word] += NAME_WORD_WEIGHT
    return counts


def idf_table(documents: list[Counter]) -> dict[str, float]:
    """Smoothed inverse document frequency over `documents` (term -> weight)."""
    n = len(documents)
    df = Counter(term for doc in documents for term in doc)
    return {term: math.log((1 + n) / (1 + count)) + 1.0 for term, count in df.items()}


def tfidf(counts: Counter, idf: dict[str, float]) -> dict[str, float]:
    """Unit-length TF-IDF vector (sublinear term frequency)."""
    vector = {t: (1.0 + math.log(c)) * idf.get(t, 1.0) for t, c in counts.items() if c > 0}
    length = math.sqrt(sum(v * v for v in vector.values()))
    return {t: v / length for t, v in vector.items()} if length else {}


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def build_profile(history: list[ItemFeatures], idf: dict[str, float]) -> Profile:
    """`history` newest first; each booked item weighs RECENCY_DECAY ** position."""
    profile = Profile()
    terms: dict[str, float] = defaultdict(float)
    for position, item in enumerate(history):
        weight = RECENCY_DECAY ** position
        profile.total += weight
        features = [("organizer", profile.organizers, str(item.organizer_id)),
                    ("category", profile.categories, _norm(item.category)),
                    ("location", profile.locations, _norm(item.location))]
        features += [("tag", profile.tags, tag) for tag in _tag_set(item)]
        for kind, counter, value in features:
            if value:
                counter[value] += weight
                profile.examples.setdefault((kind, value), item.name)  # newest first: the most recent
        for term, value in tfidf(_term_counts(item), idf).items():
            terms[term] += weight * value
    length = math.sqrt(sum(v * v for v in terms.values()))
    profile.terms = {t: v / length for t, v in terms.items()} if length else {}
    return profile


def _score(item: ItemFeatures, counts: Counter, profile: Profile, idf: dict[str, float]) -> tuple[float, str]:
    parts: list[tuple[float, str]] = []
    organizer = profile.share(profile.organizers, str(item.organizer_id))
    if organizer > MIN_SHARE_IN_REASON:
        example = profile.examples[("organizer", str(item.organizer_id))]
        parts.append((W_ORGANIZER * organizer, f"same organizer as '{example}'"))
    category = profile.share(profile.categories, _norm(item.category))
    if category > MIN_SHARE_IN_REASON:
        parts.append((W_CATEGORY * category, f"same category: {item.category}"))
    tags = _tag_set(item)
    shared = sorted(t for t in tags if profile.tags[t] > 0)
    if shared:
        tag_score = sum(profile.share(profile.tags, t) for t in tags) / len(tags)
        parts.append((W_TAGS * tag_score, f"shares tags: {', '.join(shared)}"))
    location = profile.share(profile.locations, _norm(item.location))
    if location > MIN_SHARE_IN_REASON:
        parts.append((W_LOCATION * location, f"same location: {item.location}"))
    vector = tfidf(counts, idf)
    similarity = cosine(profile.terms, vector)
    if similarity > MIN_SHARE_IN_REASON:
        common = sorted((t for t in vector if t in profile.terms),
                        key=lambda t: (-vector[t] * profile.terms[t], t))[:REASON_WORDS]
        parts.append((W_TEXT * similarity, f"similar words: {', '.join(common)}"))
    if not parts:
        return 0.0, "Upcoming item with seats left"
    score = sum(value for value, _ in parts)
    # Strongest signal first, so the reason reads in order of importance.
    reasons = [text for _, text in sorted(parts, key=lambda p: -p[0])]
    reason = "; ".join(reasons)
    return score, reason[:1].upper() + reason[1:]


def recommend(history: list[ItemFeatures], candidates: list[ItemFeatures], *, limit: int) -> list[Recommendation]:
    """Top `limit` candidates for a user who booked `history` (newest first).
    No history: cold start, the most-booked candidates (ties by start time)."""
    if not history:
        ranked = sorted(candidates, key=lambda c: (-c.popularity, c.start_time, c.id))[:limit]
        return [Recommendation(c.id, float(c.popularity), _popular_reason(c)) for c in ranked]
    counts = [_term_counts(item) for item in candidates]  # each text tokenized once
    idf = idf_table([*(_term_counts(item) for item in history), *counts])
    profile = build_profile(history, idf)
    scored = [(c, *_score(c, terms, profile, idf)) for c, terms in zip(candidates, counts)]
    scored.sort(key=lambda row: (-round(row[1], 9), row[0].start_time, row[0].id))
    return [Recommendation(c.id, score, reason) for c, score, reason in scored[:limit]]


def _popular_reason(item: ItemFeatures) -> str:
    if item.popularity == 0:
        return "Upcoming item with seats left"
    noun = "booking" if item.popularity == 1 else "bookings"
    return f"Popular: {item.popularity} {noun}"
