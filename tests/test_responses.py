"""The response record's one owner: its version travels in the file, older files read, newer ones are refused."""

import polars as pl
import pytest

from aimokit import responses


def test_the_record_round_trips_with_its_version_and_an_older_file_reads_with_nulls(tmp_path):
    rec = {"problem_id": "p1", "sample": 0, "prompt": "q", "response": "\\boxed{42}", "answer": 42, "gold": 42,
           "correct": True, "tool_spans": [[1, 3]], "answer_at": "answer"}
    path = tmp_path / responses.FILE
    responses.write(path, responses.frame([rec]))
    assert responses.version(path) == responses.VERSION
    back = responses.read(path)
    assert back.columns == list(responses.SCHEMA) and back.row(0, named=True)["tool_spans"] == [[1, 3]]
    old = tmp_path / "old.parquet"  # a file of an earlier kit: no version, fewer columns
    pl.DataFrame({"problem_id": ["p1"], "sample": [0], "prompt": ["q"], "response": ["r"], "correct": [False]}) \
        .write_parquet(old)
    got = responses.read(old)
    assert responses.version(old) == 1 and got["answer_at"].to_list() == [None]


def test_a_reader_names_the_missing_column_and_a_file_from_a_newer_kit_is_refused(tmp_path):
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"problem_id": ["p"]}).write_parquet(bad)
    with pytest.raises(responses.ResponsesError, match=r"missing column\(s\) \['prompt'\]"):
        responses.scan([str(bad)], ("problem_id", "prompt"))
    newer = tmp_path / "newer.parquet"
    responses.frame([{"problem_id": "p", "sample": 0}]).write_parquet(
        newer, metadata={responses.VERSION_KEY: str(responses.VERSION + 1)})
    with pytest.raises(responses.ResponsesError, match="newer kit"):
        responses.read(newer)
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(responses.ResponsesError, match="not a parquet file"):
        responses.read(tmp_path / "text.parquet")
