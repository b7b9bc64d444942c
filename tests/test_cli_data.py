"""`bench data list|describe` through the real entry point."""

from __future__ import annotations

from bench.cli import main


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("ml-100k", "ml-20m", "amazon-2018", "google-local-2021"))


def test_data_describe_ml100k(capsys):
    assert main(["data", "describe", "ml-100k", "--seq-len", "50"]) == 0
    out = capsys.readouterr().out
    for fact in ("users                                943", "58957", "551", "563", "prepare seconds"):
        assert fact in out
    # both splits side by side: leave-one-out trains on the future, the temporal split does not
    assert "train labels after the median test label      21175 of 58957 (35.9%)  0 of 48029 (0.0%)" in out


def test_data_describe_bad_path_is_one_clear_error(capsys, tmp_path):
    assert main(["data", "describe", "ml-20m", "--path", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "ratings.csv: file not found" in err and len(err.splitlines()) == 1


def test_data_describe_counts_labels_that_repeat_the_users_history(capsys, shared_data):
    path = shared_data / "amazon2018"
    assert main(["data", "describe", "amazon-2018", "--path", str(path), "--option", "category=Magazine_Subscriptions",
                 "--seq-len", "3"]) == 0
    out = capsys.readouterr().out
    assert "valid labels repeating history                18 of 347 (5.2%)" in out
    assert "test labels repeating history                 22 of 347 (6.3%)" in out
