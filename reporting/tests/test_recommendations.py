"""The pure scorer (reporting.recommendations), no database."""

import math
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


def test_single_signals_rank_by_their_documented_weights():
    """organizer 3.0 > category 2.5 > tags 2.0 > location 1.0, each a full share; listed so that
    start time alone would give the opposite order."""
    booked = item(1, organizer=7, category="Wellness", tags=["yoga"], location="Park")
    location, tags, category, organizer = (item(10, organizer=8, location="Park", day=1),
                                           item(11, organizer=8, tags=["yoga"], day=2),
                                           item(12, organizer=8, category="Wellness", day=3),
                                           item(13, organizer=7, day=4))
    ranked = recommend([booked], [location, tags, category, organizer], limit=4)
    assert ids(ranked) == [13, 12, 11, 10]
    assert [round(r.score, 9) for r in ranked] == [3.0, 2.5, 2.0, 1.0]


def test_a_candidates_tags_the_profile_lacks_dilute_its_tag_share():
    """The tag score is the mean share over the candidate's tags: one of two shared scores half."""
    booked = item(1, organizer=7, tags=["python"])
    diluted = item(10, organizer=8, tags=["python", "java"], day=0)
    exact = item(11, organizer=8, tags=["python"], day=1)
    ranked = recommend([booked], [diluted, exact], limit=2)
    assert ids(ranked) == [11, 10]
    assert [round(r.score, 9) for r in ranked] == [2.0, 1.0]


def test_a_word_of_the_booked_items_name_weighs_more_than_one_of_its_description():
    booked = item(1, "Pottery", description="clay")
    from_description, from_name = item(10, description="clay", day=0), item(11, description="pottery", day=1)
    assert ids(recommend([booked], [from_description, from_name], limit=2)) == [11, 10]


def test_term_frequency_is_sublinear():
    """A word said three times weighs 1 + ln 3 against a word said once, not 3: repeating a
    keyword does not buy a ranking."""
    vector = tfidf(Counter(python=3, django=1), {"python": 1.0, "django": 1.0})
    assert abs(vector["python"] / vector["django"] - (1 + math.log(3))) < 1e-9


def test_the_reason_names_the_most_recent_booked_item_with_that_feature():
    history = [item(2, "Newer", organizer=1), item(1, "Older", organizer=1)]  # newest first
    [ranked] = recommend(history, [item(10, organizer=1)], limit=1)
    assert ranked.reason == "Same organizer as 'Newer'"
