"""One status vocabulary for run.json, training summaries and the report."""

import pytest

from ouro.runs import status as st


@pytest.mark.parametrize("recorded, word", [
    ("completed", "completed"), ("finished", "completed"), ("Finished ", "completed"), ("done", "completed"),
    ("running", "running"), ("interrupted", "interrupted"), ("killed", "interrupted"), ("preempted", "interrupted"),
    ("failed", "failed"), ("error", "failed"), ("what-is-this", "unknown"),
])
def test_recorded_words_map_onto_the_vocabulary(recorded, word):
    assert st.normalise(recorded) == word and word in st.STATUSES


@pytest.mark.parametrize("blank", [None, "", "   ", 3, True])
def test_nothing_recorded_is_none_not_a_word(blank):
    assert st.normalise(blank) is None


def test_training_summaries():
    assert st.of_summary({"status": "completed", "finished": False}) == "completed"  # the word wins
    assert st.of_summary({"finished": True}) == "completed"  # older metrics.json
    assert st.of_summary({"finished": False, "stopped_by": "signal 15"}) == "interrupted"
    assert st.of_summary({"global_step": 3}) is None
