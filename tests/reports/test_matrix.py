"""The participation matrix with rows sent and accepted, on screen and from
`yobikake report matrix`."""

import csv
import io

from django.core.management import call_command

from tests.intake.files import csv_bytes, people, row_of, write
from yobikake.intake import services
from yobikake.reports.selectors import list_matrix


def send(world, tmp_path, rows, year=2022, policy="exclude"):
    path = write(tmp_path, f"{year}-{len(rows)}.csv", csv_bytes(rows))
    list_import = services.start_import(
        actor=None,
        insurer=world.insurer_a,
        fiscal_year=year,
        file_name=path.name,
        file_sha256=services.file_sha256(path),
        policy=policy,
    )
    return services.run_import(list_import, path)


def test_cells_count_rows_sent_and_rows_accepted(world, tmp_path):
    rows = [row_of(p) for p in people(10)]
    rows[0][3] = "X"  # one row excluded
    send(world, tmp_path, rows)
    matrix = list_matrix(world.fed_admin)
    years = [fy.year for fy in matrix.fiscal_years]
    row_a = next(r for r in matrix.rows if r.insurer == world.insurer_a)
    cell = row_a.cells[years.index(2022)]
    assert (cell.took_part, cell.submitted, cell.accepted) == (True, 10, 9)
    assert (matrix.submitted, matrix.accepted) == (10, 9)
    assert matrix.insurers_per_year() == [1, 2]  # A: 2021 and 2022; B: 2022


def test_the_page_shows_the_counts_and_insurer_staff_see_only_their_own(world, tmp_path, as_user):
    send(world, tmp_path, [row_of(p) for p in people(6)])
    page = as_user(world.fed_admin).get("/insurers/participation/")
    assert "6 / 6" in page.text and "テスト町B" in page.text
    assert as_user(world.staff_b).get("/insurers/participation/").status_code == 403


def test_the_command_writes_the_seed_layout_as_csv_xlsx_and_html(world, tmp_path):
    send(world, tmp_path, [row_of(p) for p in people(7)])
    out = io.StringIO()
    call_command("report", "matrix", stdout=out)
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0][:4] == ["insurer_number", "insurer_name", "fy2021", "fy2022"]
    row_a = next(r for r in table if r[0] == world.insurer_a.number)
    assert row_a[2:4] == ["1", "1"] and row_a[-2:] == ["7", "7"]
    assert table[-1][1] == "total" and table[-1][-2:] == ["7", "7"]
    xlsx = tmp_path / "m.xlsx"
    call_command("report", "matrix", "--format", "xlsx", "--out", str(xlsx))
    import openpyxl

    sheet = openpyxl.load_workbook(xlsx).active
    assert sheet.cell(1, 1).value == "insurer_number"
    html = tmp_path / "m.html"
    call_command("report", "matrix", "--format", "html", "--out", str(html))
    assert "テスト市A" in html.read_text(encoding="utf-8")
