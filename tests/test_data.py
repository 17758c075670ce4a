"""CSV reading: what a user gets back, and the errors naming file, line and column."""

import numpy as np
import pytest

from conftest import MALL_CSV

from tinygmm.data import demo_data, load_csv, read_csv
from tinygmm.errors import TinyGMMError

MALL = MALL_CSV


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(*args, **kwargs) -> str:
    with pytest.raises(TinyGMMError) as e:
        read_csv(*args, **kwargs)
    return str(e.value)


def test_header_names_and_values(tmp_path):
    p = write(tmp_path, "a,b (k$),c\n1,2.5,-3e2\n4,5,6\n")
    X, names = read_csv(p)
    assert names == ["a", "b (k$)", "c"]
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1, 2.5, -300], [4, 5, 6]])


def test_no_header_gets_x_names(tmp_path):
    X, names = read_csv(write(tmp_path, "1,2\n3,4\n"))
    assert names == ["x0", "x1"]
    assert X.shape == (2, 2)


def test_headerless_text_column_is_not_taken_for_a_header(tmp_path):
    p = write(tmp_path, "1,Male,19\n2,Female,21\n")
    data = load_csv(p)
    assert not data.has_header
    assert data.feature_names == ["x0", "x2"]
    assert data.skipped_columns == ["x1"]
    np.testing.assert_array_equal(data.X, [[1, 19], [2, 21]])


def test_select_by_name_with_spaces_and_parentheses(tmp_path):
    p = write(tmp_path, "id,Gender,Age,Spending Score (1-100)\n1,M,19,39\n2,F,21,81\n")
    X, names = read_csv(p, "Age, Spending Score (1-100)")
    assert names == ["Age", "Spending Score (1-100)"]
    np.testing.assert_array_equal(X, [[19, 39], [21, 81]])


def test_select_by_index_keeps_order(tmp_path):
    p = write(tmp_path, "id,Gender,Age,Score\n1,M,19,39\n2,F,21,81\n")
    X, names = read_csv(p, "3,2")
    assert names == ["Score", "Age"]
    np.testing.assert_array_equal(X, [[39, 19], [81, 21]])


def test_index_selection_without_header(tmp_path):
    X, names = read_csv(write(tmp_path, "1,a,3\n4,b,6\n"), "2,0")
    assert names == ["x2", "x0"]
    np.testing.assert_array_equal(X, [[3, 1], [6, 4]])


@pytest.mark.parametrize("text,delim", [("a;b\n1.5;2\n3;4\n", ";"), ("a\tb\n1.5\t2\n3\t4\n", "tab")])
def test_delimiters_are_sniffed(tmp_path, text, delim):
    X, names = read_csv(write(tmp_path, text))
    assert names == ["a", "b"]
    np.testing.assert_array_equal(X, [[1.5, 2], [3, 4]])


def test_missing_column_lists_available(tmp_path):
    msg = error_of(write(tmp_path, "Age,Income\n1,2\n"), "Age,Salary")
    assert "'Salary'" in msg and "'Age'" in msg and "'Income'" in msg


def test_name_selection_needs_a_header_index_out_of_range(tmp_path):
    msg = error_of(write(tmp_path, "a,b\n1,2\n"), "5")
    assert "'5'" in msg and "'a'" in msg


def test_non_numeric_cell_names_line_and_column(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n3,4\n5,oops\n")
    msg = error_of(p, "a,b")
    assert "line 4" in msg and "'b'" in msg and "'oops'" in msg


def test_line_numbers_count_blank_lines(tmp_path):
    p = write(tmp_path, "a,b\n\n1,2\n\n3,x\n")
    assert "line 5" in error_of(p, "a,b")


def test_decimal_comma_hint(tmp_path):
    p = write(tmp_path, "a;b\n1;2\n3;4,5\n")
    msg = error_of(p, "a,b")
    assert "line 3" in msg and "decimal comma" in msg


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path, text):
    assert "empty" in error_of(write(tmp_path, text))


def test_header_only(tmp_path):
    assert "no data rows" in error_of(write(tmp_path, "a,b\n"))


def test_missing_file(tmp_path):
    assert "no such file" in error_of(tmp_path / "nope.csv")


def test_ragged_row(tmp_path):
    msg = error_of(write(tmp_path, "a,b\n1,2\n3,4,5\n"))
    assert "line 3" in msg and "3 fields" in msg


def test_no_numeric_column(tmp_path):
    msg = error_of(write(tmp_path, "name,colour\nann,red\nbob,blue\n"))
    assert "no column holds numbers" in msg and "--columns" in msg


def test_missing_values_rejected_with_line_numbers(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n,4\n5,NA\n7,nan\n9,10\n")
    msg = error_of(p)
    assert "3 row(s)" in msg and "3, 4, 5" in msg and "--drop-missing" in msg


def test_missing_values_listing_is_capped(tmp_path):
    p = write(tmp_path, "a,b\n" + "1,\n" * 25 + "1,2\n")
    msg = error_of(p, "a,b")
    assert "25 row(s)" in msg and "and 15 more" in msg


def test_missing_values_dropped(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n,4\n5,NA\n9,10\n")
    data = load_csv(p, drop_missing=True)
    np.testing.assert_array_equal(data.X, [[1, 2], [9, 10]])
    assert data.dropped_rows == [3, 4]
    assert "dropped 2 row(s) with missing values (lines 3, 4)" in data.notes()
    many = load_csv(write(tmp_path, "a,b\n1,2\n" + ",4\n" * 12), drop_missing=True)
    assert "dropped 12 row(s) with missing values (lines 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 2 more)" in many.notes()


def test_all_rows_missing_dropped_is_an_error(tmp_path):
    assert "nothing is left" in error_of(write(tmp_path, "a,b\n1,\n,2\n"), drop_missing=True)


@pytest.mark.parametrize("cell", ["inf", "-Infinity", "1e999"])
def test_non_finite_values_rejected(tmp_path, cell):
    msg = error_of(write(tmp_path, f"a,b\n1,2\n3,{cell}\n"), "a,b")
    assert "line 3" in msg and "not finite" in msg


def test_utf8_bom_is_not_part_of_the_first_name(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffAge,Score\n1,2\n".encode("utf-8"))
    assert read_csv(p)[1] == ["Age", "Score"]


def test_demo_data_is_deterministic_three_blobs():
    X1, names = demo_data()
    X2, _ = demo_data()
    assert names == ["x", "y"]
    assert X1.shape == (600, 2)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_allclose(X1[:200].mean(axis=0), [0, 0], atol=0.2)
    np.testing.assert_allclose(X1[200:400].mean(axis=0), [5, 5], atol=0.2)
    np.testing.assert_allclose(X1[400:].mean(axis=0), [5, 0], atol=0.2)


@pytest.mark.skipif(not MALL.is_file(), reason=f"{MALL} not present (shared data set, not shipped in the repo)")
def test_mall_customers():
    data = load_csv(MALL)
    assert data.has_header
    assert data.feature_names == ["CustomerID", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    assert data.skipped_columns == ["Gender"]
    X, names = read_csv(MALL, "Annual Income (k$),Spending Score (1-100)")
    assert X.shape == (200, 2)
    np.testing.assert_array_equal(X[0], [15, 39])
    X2, _ = read_csv(MALL, "3,4")
    np.testing.assert_array_equal(X, X2)


def test_a_stray_word_in_a_numeric_column_is_an_error_not_a_skipped_column(tmp_path):
    msg = error_of(write(tmp_path, "a,b\n1,2\n3,x\n5,6\n"))
    assert "line 3" in msg and "'b'" in msg and "'x' is not a number" in msg


def test_a_column_with_no_number_is_skipped_with_a_note(tmp_path):
    data = load_csv(write(tmp_path, "Gender,Age\nMale,19\nFemale,21\n"))
    assert data.feature_names == ["Age"] and data.skipped_columns == ["Gender"]
    assert any("Gender" in note for note in data.notes())


@pytest.mark.parametrize("bad_line", [3, 70_000, 140_001])
def test_long_files_keep_exact_line_numbers_and_messages(tmp_path, bad_line):
    """Chunks read by NumPy's C reader or cell by cell give the same values and the same errors."""
    rows = [f"{i},{i * 0.5}" for i in range(150_000)]
    p = write(tmp_path, "a,b\n" + "\n".join(rows) + "\n")
    X, _ = read_csv(p)
    np.testing.assert_array_equal(X, np.column_stack([np.arange(150_000), np.arange(150_000) * 0.5]))
    rows[bad_line - 2] = f"{bad_line},1_0"
    p = write(tmp_path, "a,b\n" + "\n".join(rows) + "\n")
    msg = error_of(p)
    assert f"line {bad_line}," in msg and "'1_0' is not a number" in msg
    rows[bad_line - 2] = f"{bad_line},"
    data = load_csv(write(tmp_path, "a,b\n" + "\n".join(rows) + "\n"), drop_missing=True)
    assert data.dropped_rows == [bad_line] and len(data.X) == 149_999
