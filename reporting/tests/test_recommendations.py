"""The pure scorer (reporting.recommendations), no database."""

from collections import Counter
from datetime import datetime, timedelta

from reporting.recommendations import ItemFeatures, cosine, idf_table, recommend, tfidf, tokenize

T0 = datetime(2031, 1, 1, 10, 0)


def item(id, name="", *, description="", organizer=1, category=None, tags=(), location="", day=0, popularity=0):
    return ItemFeatures(id=id, name=name, description=description, organizer_id=organizer, category=category,
                        tags=tuple(tags), location=location, start_time=T0 + timedelta(days=day),
                        popularity=popularity)


def ids(recommendations):
    return [r.item_id for r in recommendations]


def test_tokenize_drops_stop_words_digits_and_case():
    assert tokenize("The Python Workshop: an INTRO to Django, 2031 edition!") == [
        "python", "workshop", "intro", "django", "edition"]


def test_rare_words_weigh_more_than_common_ones():
    docs = [Counter(workshop=1, kubernetes=1), Counter(workshop=1), Counter(workshop=1)]
    idf = idf_table(docs)
    assert idf["kubernetes"] > idf["workshop"]
    vector = tfidf(docs[0], idf)
    assert vector["kubernetes"] > vector["workshop"]
    assert abs(cosine(vector, vector) - 1.0) < 1e-9


def test_each_signal_lifts_a_candidate_above_an_unrelated_one():
    booked = item(1, "Yoga at dawn", organizer=7, category="Wellness", tags=["yoga"], location="Park")
    unrelated = item(99, "Chess club", organizer=8, day=0)
    for related in (item(2, "Chess club", organizer=7, day=1),
                    item(3, "Chess club", organizer=8, category="wellness", day=1),
                    item(4, "Chess club", organizer=8, tags=["Yoga"], day=1),
                    item(5, "Chess club", organizer=8, location=" park ", day=1),
                    item(6, "Morning yoga", organizer=8, day=1)):
        ranked = recommend([booked], [unrelated, related], limit=2)
        assert ids(ranked) == [related.id, unrelated.id], related
        assert ranked[0].score > 0 == ranked[1].score


def test_reason_names_the_booked_item_and_shared_features():
    booked = item(1, "Tech Workshop", organizer=3, category="Tech", tags=["python", "web"], location="Room 1")
    candidate = item(2, "Another Tech Workshop", organizer=3, category="Tech", tags=["python"], location="Room 1")
    reason = recommend([booked], [candidate], limit=1)[0].reason
    for part in ("Same organizer as 'Tech Workshop'", "same category: Tech", "shares tags: python",
                 "same location: Room 1", "similar words: tech, workshop"):
        assert part.lower() in reason.lower()


def test_reason_is_one_sentence_whatever_signal_leads():
    """Only the reason's first letter is upper case: "Same category: Tech; same organizer as …",
    not a capital after each semicolon (the organizer and category parts once always had one)."""
    history = [item(1, "a", organizer=1, category="Tech"), item(2, "b", organizer=2, category="Tech")]
    reason = recommend(history, [item(10, "x", organizer=1, category="tech")], limit=1)[0].reason
    assert reason.startswith("Same category: tech; same organizer as 'a'"), reason
    for part in reason.split("; ")[1:]:
        assert part[:1].islower(), reason


def test_recent_bookings_weigh_more_than_old_ones():
    history = [item(1, "a", organizer=1), item(2, "b", organizer=2)]  # newest first
    candidates = [item(10, "x", organizer=2, day=0), item(11, "y", organizer=1, day=5)]
    assert ids(recommend(history, candidates, limit=2)) == [11, 10]


def test_ties_by_start_time_then_id_and_limit():
    candidates = [item(5, day=3), item(4, day=1), item(3, day=1), item(2, day=2)]
    assert ids(recommend([item(1, "zzz", organizer=9)], candidates, limit=3)) == [3, 4, 2]


def test_cold_start_orders_by_popularity_then_start_time():
    candidates = [item(1, day=0, popularity=1), item(2, day=2, popularity=5), item(3, day=1, popularity=5)]
    ranked = recommend([], candidates, limit=5)
    assert ids(ranked) == [3, 2, 1]
    assert ranked[0].reason == "Popular: 5 bookings" and ranked[2].reason == "Popular: 1 booking"
