"""Slot choice: a new request keeps the most of its prefix that the KV cache holds."""

from smallfirst.models.llamacpp_slots import Slot, common_prefix, place


def test_common_prefix_counts_leading_equal_tokens():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0


def test_free_slot_holding_the_prefix_is_taken_without_a_copy():
    slots = [Slot(0, [9, 9], used_at=1), Slot(1, [1, 2, 3], used_at=2)]
    placement = place(slots, [1, 2, 3, 4])
    assert (placement.slot.seq_id, placement.reuse, placement.source) == (1, 3, None)


def test_busy_slot_lends_its_prefix_to_the_longest_idle_free_slot():
    busy = Slot(0, [1, 2, 3] * 30, job=object())
    slots = [busy, Slot(1, [5], used_at=4), Slot(2, [6], used_at=3)]
    placement = place(slots, [1, 2, 3] * 30 + [8])
    assert placement.slot.seq_id == 2 and placement.reuse == 90 and placement.source is busy


def test_a_short_shared_prefix_is_evaluated_again_not_copied():
    slots = [Slot(0, [1, 2, 3, 7], job=object()), Slot(1, [5])]
    placement = place(slots, [1, 2, 3, 8])
    assert (placement.slot.seq_id, placement.reuse, placement.source) == (1, 0, None)


def test_no_free_slot_means_wait():
    assert place([Slot(0, job=object())], [1]) is None
