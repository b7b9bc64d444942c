"""Damaged and dirty source files: one DataError naming the file and line, or rows dropped and counted;
a damaged cache rebuilt. Every file is made here (no data needed on a clean clone)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.data import load_dataset
from bench.data.cache import cache_root
from bench.errors import DataError


def _amazon(folder: Path, reviews: list, raw_line: str | None = None, at: int = 2) -> Path:
    """Gift_Cards files: ``reviews`` as JSON lines, with ``raw_line`` put in as line ``at`` if given."""
    lines = [json.dumps(r) for r in reviews]
    if raw_line is not None:
        lines.insert(at - 1, raw_line)
    (folder / "Gift_Cards_5.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    meta = [{"asin": f"i{i}", "title": f"Card {i}", "category": ["Gift Cards", f"Kind {i % 2}"]} for i in range(4)]
    (folder / "meta_Gift_Cards.json.gz").write_bytes(gzip.compress("\n".join(map(json.dumps, meta)).encode()))
    return folder


def _reviews(users: int = 3, per_user: int = 6) -> list[dict]:
    return [{"reviewerID": f"u{u}", "asin": f"i{(u + i) % 4}", "overall": 4.0, "unixReviewTime": 1_500_000_000 + i,
             "summary": "fine"} for u in range(users) for i in range(per_user)]


@pytest.mark.parametrize("line, what", [("[1, 2]", "a JSON list"), ("null", "a JSON NoneType"),
                                        ("7", "a JSON int"), ('"text"', "a JSON str"),
                                        ('{"reviewerID": ', "Expecting value")])
def test_a_json_line_that_is_not_an_object_names_file_and_line(tmp_path, line, what):
    _amazon(tmp_path, _reviews(), line, at=3)
    with pytest.raises(DataError, match=rf"Gift_Cards_5\.json\.gz: not readable as JSON lines: line 3: {what}.*expected Amazon 2018"):
        load_dataset("amazon-2018", tmp_path)


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    lines = [json.dumps(r).encode() for r in _reviews()]
    lines.insert(4, b'{"reviewerID": "\xff\xfe"}')
    _amazon(tmp_path, [])
    (tmp_path / "Gift_Cards_5.json.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(DataError, match=r"line 5: bytes that are not UTF-8"):
        load_dataset("amazon-2018", tmp_path)


def test_a_corrupt_gzip_is_one_error_naming_the_file(tmp_path):
    reviews = [{"user_id": f"u{i % 3}", "gmap_id": "g1", "rating": 5, "time": 1_600_000_000_000 + i, "text": "ok"}
               for i in range(2000)]
    blob = bytearray(gzip.compress("\n".join(map(json.dumps, reviews)).encode()))
    blob[len(blob) // 2: len(blob) // 2 + 64] = bytes(64)  # zeros in the middle of the deflate stream
    (tmp_path / "review-Vermont.json.gz").write_bytes(bytes(blob))
    (tmp_path / "meta-Vermont.json.gz").write_bytes(gzip.compress(b'{"gmap_id": "g1", "name": "A", "category": []}\n'))
    with pytest.raises(DataError, match=r"review-Vermont\.json\.gz: not readable as JSON lines: (after )?line \d+: .*expected Google Local"):
        load_dataset("google-local-2021", tmp_path)
    (tmp_path / "review-Vermont.json.gz").write_bytes(bytes(blob[: len(blob) // 3]))  # truncated
    with pytest.raises(DataError, match=r"review-Vermont\.json\.gz: .*gzip"):
        load_dataset("google-local-2021", tmp_path)


def test_rows_missing_a_user_item_rating_or_time_are_dropped_and_counted(tmp_path, capsys):
    reviews = _reviews(users=3, per_user=6)
    reviews[0]["reviewerID"] = None
    reviews[1]["overall"] = ""
    reviews[2]["unixReviewTime"] = None
    del reviews[3]["asin"]
    data = load_dataset("amazon-2018", _amazon(tmp_path, reviews))
    assert len(data.events) == len(reviews) - 4
    assert data.n_users == 3  # no user "None"
    assert {k: data.notes[k] for k in ("rows_without_user", "rows_without_item", "rows_without_rating",
                                       "rows_without_timestamp")} == dict.fromkeys(
        ["rows_without_user", "rows_without_item", "rows_without_rating", "rows_without_timestamp"], 1)
    assert main(["data", "describe", "amazon-2018", "--path", str(tmp_path), "--seq-len", "1"]) == 0
    assert "rows_without_rating" in capsys.readouterr().out


def test_a_rating_that_is_not_a_number_names_line_and_value(tmp_path):
    reviews = _reviews()
    reviews[4]["overall"] = "five"
    with pytest.raises(DataError, match=r"Gift_Cards_5\.json\.gz: line 5: overall='five' is not a number"):
        load_dataset("amazon-2018", _amazon(tmp_path, reviews))


def test_an_empty_csv_rating_is_dropped_not_read_as_nan(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,,1112486027\n1,29,3.5,1112484676\n"
                                          ",2,4.0,974820889\n2,2,4.0,974820889\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n2,Jumanji (1995),Adventure\n29,City (1995),Drama\n")
    data = load_dataset("ml-20m", tmp_path)
    assert len(data.events) == 2 and data.notes["rows_without_rating"] == 1 and data.notes["rows_without_user"] == 1
    assert data.events["rating"].notna().all()
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,abc,1112484676\n")
    with pytest.raises(DataError, match=r"ratings\.csv: not readable: line 3: rating='abc' is not a number"):
        load_dataset("ml-20m", tmp_path)


def test_a_damaged_cache_file_is_rebuilt(tmp_path, capsys):
    _amazon(tmp_path, _reviews())
    first = load_dataset("amazon-2018", tmp_path)
    folders = [p for p in (cache_root() / "data").glob("amazon-2018-*") if (p / "events.parquet").exists()]
    newest = max(folders, key=lambda p: p.stat().st_mtime)
    events = newest / "events.parquet"
    events.write_bytes(events.read_bytes()[:100])  # truncated
    again = load_dataset("amazon-2018", tmp_path)
    assert "is damaged" in capsys.readouterr().err
    assert again.fingerprint == first.fingerprint
    assert load_dataset("amazon-2018", tmp_path).fingerprint == first.fingerprint  # and it stays rebuilt


def test_describe_refuses_a_history_length_below_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "describe", "ml-100k", "--seq-len", "0"])
    assert exit_.value.code == 2 and "expected an integer >= 1, got 0" in capsys.readouterr().err


def test_a_dataset_of_single_events_says_so_before_any_trial(tmp_path, capsys):
    _amazon(tmp_path, _reviews(users=4, per_user=1))
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\ndatasets: [{{name: amazon-2018, path: {tmp_path}}}]\ntasks: [next_item]\n"
                     "seq_lens: [1]\nmethods: [{method: popularity}]\n")
    assert main(["run", str(suite), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "has no user with the 4 events a training example needs" in err and "<= -" not in err
