import polars as pl
import pytest

from aimokit.config import CompetitionConfig
from aimokit.problems import ProblemFileError, load_problems

from layout import AIME, ROOT


def test_loads_the_aime_sample():
    ps = load_problems(AIME)
    assert len(ps) == 30 and all(p.answer is not None for p in ps)
    assert len({p.id for p in ps}) == 30


def test_packaged_sample_is_the_shared_one():
    """A clone with no shared/ beside it falls back to the packaged copy; it must be the same file."""
    from aimokit.problems import PACKAGED_SAMPLE

    shared = ROOT.parent / "shared" / "data" / "aime24.jsonl"
    if not shared.is_file():  # without shared/, AIME is the packaged copy itself: nothing to compare
        pytest.skip("no shared/ beside the checkout")
    assert PACKAGED_SAMPLE.read_bytes() == shared.read_bytes()
    assert load_problems(PACKAGED_SAMPLE) == load_problems(shared)


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_each_format_round_trips(tmp_path, ext):
    df = pl.DataFrame({"id": ["a", "b"], "problem": ["1+1?", "2+2?"], "answer": [2, 4]})
    path = tmp_path / f"p.{ext}"
    {"csv": df.write_csv, "jsonl": df.write_ndjson, "parquet": df.write_parquet}[ext](path)
    ps = load_problems(path)
    assert [(p.id, p.problem, p.answer) for p in ps] == [("a", "1+1?", 2), ("b", "2+2?", 4)]


def test_answer_column_is_optional(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,problem\nx,What is 1+1?\n")
    assert load_problems(path)[0].answer is None


@pytest.mark.parametrize(
    "content, needle",
    [
        ("", "empty"),
        ("id,problem\n", "no rows"),
        ("id,question\n1,hi\n", "missing column(s) problem"),
        ("id,problem\n1,a\n2,b\n1,c\n", "duplicate id '1' at rows [1, 3]"),
        ("id,problem,answer\n1,a,5\n2,b,1000\n", "row 2 (id '2'): answer 1000 is outside"),
        ("id,problem,answer\n1,a,2.5\n", "row 1 (id '1'): answer '2.5' is not an integer"),
        ("id,problem\n1,\n", "row 1 (id '1'): empty problem"),
    ],
)
def test_malformed_files_name_file_row_and_fix(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ProblemFileError) as e:
        load_problems(path)
    assert str(path) in str(e.value) and needle in str(e.value)


def test_range_follows_the_competition(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,problem,answer\n1,a,54321\n")
    with pytest.raises(ProblemFileError, match="fix the answer or pick the competition"):
        load_problems(path)
    aimo3 = CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)
    assert load_problems(path, aimo3)[0].answer == 54321


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(ProblemFileError, match="use .csv, .jsonl or .parquet"):
        (tmp_path / "p.txt").write_text("x")
        load_problems(tmp_path / "p.txt")
    with pytest.raises(ProblemFileError, match="no such file"):
        load_problems(tmp_path / "missing.csv")


def test_broken_jsonl_is_a_parse_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1, "problem": "a"}\n{"id": 2, "problem": \n')
    with pytest.raises(ProblemFileError, match="cannot be parsed as jsonl"):
        load_problems(path)
