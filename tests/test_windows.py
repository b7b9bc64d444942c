"""Examples as in the paper: exact windows, stable time order, no leak of valid/test into training."""

from __future__ import annotations

import numpy as np

from bench.data import build_split

from conftest import make_dataset


def test_ties_keep_source_order():
    data = make_dataset([("u", "b", 5), ("u", "a", 5), ("u", "c", 1), ("u", "d", 5)],
                        {"a": ["x"], "b": ["x"], "c": ["x"], "d": ["x"]})
    keys = data.items["key"].to_numpy()[data.item]
    assert keys.tolist() == ["c", "b", "a", "d"]  # not sorted by item id within timestamp 5


def test_window_layout_for_one_user():
    data = make_dataset([("u", str(i), i) for i in range(10)], {str(i): ["x"] for i in range(10)})
    split = build_split(data, 3)
    assert split.test.positions().tolist() == [[6, 7, 8]] and split.test.label_positions.tolist() == [9]
    assert split.valid.positions().tolist() == [[5, 6, 7]] and split.valid.label_positions.tolist() == [8]
    assert split.train.label_positions.tolist() == [3, 4, 5, 6, 7]  # every label before the valid event (8)


def test_too_few_events_give_no_example_of_that_kind():
    data = make_dataset([("a", "x", t) for t in range(4)] + [("b", "x", t) for t in range(5)], {"x": ["c"]})
    split = build_split(data, 3)
    assert split.test.users.tolist() == [0, 1] and split.valid.users.tolist() == [1] and len(split.train) == 0


def test_no_valid_or_test_event_leaks_into_training(ml100k):
    split = build_split(ml100k, 20)
    ptr = ml100k.user_ptr
    valid_label = ptr[1:] - 2
    train = split.train
    last_used = train.label_positions  # the label is the latest event a training example touches
    assert np.all(last_used < valid_label[train.users])
    assert np.all(train.starts >= ptr[:-1][train.users])
    assert np.all(split.test.label_positions == ptr[1:][split.test.users] - 1)
    per_user = np.bincount(train.users, minlength=ml100k.n_users)
    assert np.array_equal(per_user, np.maximum(np.diff(ptr) - 20 - 2, 0))


def test_windows_are_offsets_not_copies(ml100k):
    """An example holds an offset and a user id, never its events: a split of 59k windows of 50 events
    costs 12 bytes per window, and the offsets name exactly the user's own consecutive events."""
    split = build_split(ml100k, 50)
    users = ml100k.events["user"].to_numpy()
    for examples in (split.train, split.valid, split.test):
        held = [value for value in vars(examples).values() if isinstance(value, np.ndarray)]
        assert sum(array.nbytes for array in held) == 12 * len(examples)
        positions = examples.positions()
        assert np.array_equal(users[positions], np.repeat(examples.users[:, None], 50, axis=1))
        assert (np.diff(positions, axis=1) == 1).all()
        assert (users[examples.label_positions] == examples.users).all()
    head = split.train.subset(slice(0, 100))
    assert np.shares_memory(head.starts, split.train.starts)  # a slice of the split is a view of it


def test_a_temporal_split_cuts_every_user_at_the_same_two_times():
    # user a: events at 0..9; user b: at 0, 2, ..., 18; cuts at the 0.8 and 0.9 quantiles of all 20 times
    data = make_dataset([("a", f"a{t}", t) for t in range(10)] + [("b", f"b{t}", 2 * t) for t in range(10)],
                        {f"{u}{t}": ["x"] for u in "ab" for t in range(10)})
    split = build_split(data, 2, "temporal")
    valid_cut, test_cut = split.cuts
    times = data.events["timestamp"].to_numpy()
    assert (valid_cut, test_cut) == tuple(int(t) for t in np.quantile(times, (0.8, 0.9), method="lower"))
    assert (times[split.train.positions()] < valid_cut).all() and (times[split.train.label_positions] < valid_cut).all()
    for examples, cut in ((split.valid, valid_cut), (split.test, test_cut)):
        labels = examples.label_positions
        assert (times[labels] >= cut).all() and (times[labels - 1] < cut).all()  # each user's first at or after the cut
    assert (times[split.valid.label_positions] < test_cut).all()
    assert split.test.users.tolist() == [1] and split.valid.users.tolist() == [1]  # user a has nothing after the cuts
    # every training label before the validation cut, all of them: the windows of exactly 2 events
    per_user = [int(((times[data.user_ptr[u]:data.user_ptr[u + 1]] < valid_cut).sum()) - 2) for u in (0, 1)]
    assert len(split.train) == sum(per_user)


def test_under_a_temporal_split_no_training_event_is_at_or_after_the_cut(ml100k):
    from bench.data.views import hidden_item, visible_view

    split = build_split(ml100k, 50, "temporal")
    times = ml100k.events["timestamp"].to_numpy()
    valid_cut, test_cut = split.cuts
    assert (times[split.train.positions()] < valid_cut).all() and (times[split.train.label_positions] < valid_cut).all()
    assert len(split.test) > 50 and (times[split.test.label_positions] >= test_cut).all()
    fit, test = visible_view(ml100k, split.fit_end), visible_view(ml100k, split.test_end)
    assert (fit.item[times >= valid_cut] == hidden_item(ml100k)).all()  # no user's later event, labelled or not
    assert (fit.item[times < valid_cut] != hidden_item(ml100k)).all()
    assert (test.item[times >= test_cut] == hidden_item(ml100k)).all()
    loo = build_split(ml100k, 50)
    assert (times[loo.train.label_positions] > np.median(times[loo.test.label_positions])).mean() > 0.3  # the 35.9%


def test_prefix_windows_are_every_prefix_before_the_validation_label_right_padded():
    # user a: 10 events; user b: 4 events (no window of 3 before its validation label, prefixes of 1)
    data = make_dataset([("a", f"a{t}", t) for t in range(10)] + [("b", f"b{t}", t) for t in range(4)],
                        {f"{u}{t}": ["x"] for u in "ab" for t in range(10)})
    exact, prefixes = build_split(data, 3), build_split(data, 3, windows="prefixes")
    train = prefixes.train
    # a: labels 1..7 (its validation label is 8), b: labels 11 (b's events are 10..13, validation 12)
    assert train.label_positions.tolist() == [1, 2, 3, 4, 5, 6, 7, 11]
    assert train.lengths.tolist() == [1, 2, 3, 3, 3, 3, 3, 1]
    assert train.positions()[:3].tolist() == [[0, 0, 0], [0, 1, 1], [0, 1, 2]]  # padded with the last event
    assert train.padding()[:3].tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    assert set(exact.train.label_positions.tolist()) == {3, 4, 5, 6, 7}  # the windows of exactly 3
    assert (train.positions() < train.label_positions[:, None]).all()  # no slot reaches its label
    for part in ("valid", "test"):  # scored on the same exact windows
        assert np.array_equal(prefixes[part].starts, exact[part].starts) and prefixes[part].lengths is None
    assert train.subset([0, 7]).lengths.tolist() == [1, 1] and train.fingerprint() != exact.train.fingerprint()
