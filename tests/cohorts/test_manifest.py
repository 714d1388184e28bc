"""Manifest validation: each kind of problem is found, located (row, column) and explained."""

from __future__ import annotations

import os

import pytest

from cohorts import ManifestError, Problem, load_manifest, normalise_view, validate_manifest


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --------------------------------------------------------------------------- valid input


def test_valid_csv_loads_with_every_field(files):
    row = files.row(
        "c1",
        priors="pa:img/prior.png",
        comparison="Prior from 2023.",
        reference_findings="Clear lungs.",
        reader_draft="No acute findings.",
        reader_draft_author="R1",
        model_output="The lungs are clear.\n\n**Final Answer:**\n\\boxed{Clear lungs.}\n",
        model_id="StanfordAIMI/CheXOne",
        model_mode="Reasoning",
        mc_question="Is there an effusion?",
        mc_options="A=Yes|B=No",
        mc_answer="b",
        mc_model_output="No blunting.\n\\boxed{B}",
        mc_image_view="pa",
    )
    manifest = files.csv([row, files.row("c2", images="AP:img/ap.dcm", indication="")])
    assert validate_manifest(manifest) == []
    cohort = load_manifest(manifest)
    assert [c.case_id for c in cohort.cases] == ["c1", "c2"]
    c1, c2 = cohort.cases
    assert c1.row == 1 and c2.row == 2
    assert [(i.view, i.relpath, i.format) for i in c1.images] == [("PA", "img/pa.png", "png"), ("LATERAL", "img/lat.png", "png")]
    assert c1.images[0].path == (files.root / "img/pa.png").resolve()
    assert (c1.images[0].width, c1.images[0].height, c1.images[0].bits_stored) == (64, 80, 8)
    assert c1.priors[0].is_prior and c1.priors[0].view == "PA"
    assert c1.comparison == "Prior from 2023." and c1.reference_findings == "Clear lungs."
    reader, model = c1.drafts
    assert (reader.source, reader.text, reader.author_label) == ("reader", "No acute findings.", "R1")
    assert model.source == "model" and model.mode == "reasoning" and model.model_id == "StanfordAIMI/CheXOne"
    assert model.raw_output.endswith("\\boxed{Clear lungs.}\n")  # kept byte for byte
    (item,) = c1.mc_items
    assert item.item_id == "c1-mc1" and item.options == {"A": "Yes", "B": "No"} and item.answer == "B"
    assert item.image_view == "PA"
    assert c2.images[0].format == "dicom" and c2.images[0].bits_stored == 12
    assert c2.indication == "" and c2.drafts == () and c2.mc_items == ()
    assert cohort.root == files.root.resolve()
    assert len(cohort.manifest_sha256) == 64
    assert cohort.case("c2") is c2


def test_valid_jsonl_with_lists_and_objects(files):
    rows = [
        {
            "case_id": "j1",
            "images": [{"view": "PA", "path": "img/pa.png"}, "lat:img/lat.png"],
            "priors": [{"view": "PA", "path": "img/prior.png"}],
            "indication": "Dyspnea.",
            "mc_items": [
                {"question": "Q1?", "options": {"A": "x", "B": "y"}, "answer": "A"},
                {"item_id": "q2", "question": "Q2?", "options": ["yes", "no", "unsure"], "answer": "C"},
            ],
        },
        "",
        {"case_id": 7, "images": "AP:img/ap.dcm", "indication": None},
    ]
    cohort = load_manifest(files.jsonl(rows, "m.ndjson"))
    j1, seven = cohort.cases
    assert [i.view for i in j1.images] == ["PA", "LATERAL"]
    assert [m.item_id for m in j1.mc_items] == ["j1-mc1", "q2"]
    assert j1.mc_items[1].options == {"A": "yes", "B": "no", "C": "unsure"}
    assert seven.case_id == "7" and seven.row == 3  # JSONL rows are line numbers
    assert seven.indication == ""


def test_utf8_bom_and_case_insensitive_header_are_accepted(files):
    path = files.root / "bom.csv"
    path.write_bytes("\ufeffCase_ID,Images,Indication\nc1,PA:img/pa.png,Fièvre\n".encode("utf-8"))
    assert load_manifest(path).cases[0].indication == "Fièvre"


@pytest.mark.parametrize(
    "text, view",
    [("PA", "PA"), ("pa", "PA"), ("AP", "AP"), ("ap supine", "AP"), ("LATERAL", "LATERAL"), ("lat", "LATERAL"),
     ("LL", "LATERAL"), ("rl", "LATERAL"), ("Left-Lateral", "LATERAL"), ("oblique", None), ("", None)],
)
def test_view_aliases(text, view):
    assert normalise_view(text) == view


# --------------------------------------------------------------------------- file-level problems


def test_missing_manifest_file(tmp_path):
    problem = only(validate_manifest(tmp_path / "nope.csv"))
    assert (problem.row, problem.column) == (None, None)
    assert "manifest not found" in problem.message


def test_unknown_extension(files):
    path = files.root / "cases.xlsx"
    path.write_text("case_id,images,indication\n")
    problem = only(validate_manifest(path))
    assert problem.row is None and "unknown manifest extension '.xlsx'" in problem.message


def test_empty_manifest(files):
    path = files.raw("empty.csv", b"")
    assert only(validate_manifest(path)).message == "manifest is empty"


def test_header_only_manifest(files):
    path = files.raw("header.csv", b"case_id,images,indication\n\n")
    assert "no cases" in only(validate_manifest(path)).message


def test_non_utf8_manifest(files):
    path = files.raw("latin1.csv", "case_id,images,indication\nc1,PA:img/pa.png,Fièvre\n".encode("latin-1"))
    problem = only(validate_manifest(path))
    assert problem.row is None
    assert "not UTF-8" in problem.message and "0xe8" in problem.message and "line 2" in problem.message


@pytest.mark.parametrize("sep, words", [(";", "separated by ';'"), ("\t", "separated by tabs")])
def test_semicolon_or_tab_separated_file(files, sep, words):
    text = sep.join(["case_id", "images", "indication"]) + "\n" + sep.join(["c1", "PA:img/pa.png", "x"]) + "\n"
    problem = only(validate_manifest(files.raw("m.csv", text.encode())))
    assert problem.row is None and words in problem.message and "comma-separated" in problem.message


def test_missing_required_column(files):
    path = files.raw("m.csv", b"case_id,images\nc1,PA:img/pa.png\n")
    problem = only(validate_manifest(path))
    assert (problem.row, problem.column) == (None, "indication")
    assert "missing required column 'indication'" in problem.message


def test_unknown_column_is_reported_with_a_suggestion(files):
    path = files.csv([files.row(indicaton="typo")])
    problem = only(validate_manifest(path))
    assert (problem.row, problem.column) == (None, "indicaton")
    assert "unknown column 'indicaton'" in problem.message and "did you mean 'indication'" in problem.message


def test_duplicate_column(files):
    path = files.raw("m.csv", b"case_id,images,indication,images\nc1,PA:img/pa.png,x,PA:img/pa.png\n")
    problem = only(validate_manifest(path))
    assert problem.column == "images" and "duplicate column" in problem.message


def test_row_with_wrong_number_of_cells(files):
    path = files.raw("m.csv", b"case_id,images,indication\nc1,PA:img/pa.png,x\nc2,PA:img/pa.png,a,b\n")
    problem = only(validate_manifest(path))
    assert (problem.row, problem.column) == (2, None)
    assert "4 cells but the header has 3 columns" in problem.message


# --------------------------------------------------------------------------- case ids


def test_empty_case_id(files):
    problem = only(validate_manifest(files.csv([files.row(""), files.row("c2")])))
    assert (problem.row, problem.column, problem.message) == (1, "case_id", "case id is empty")


def test_duplicate_case_id(files):
    path = files.csv([files.row("c1"), files.row("c2"), files.row("c1")])
    problem = only(validate_manifest(path))
    assert (problem.row, problem.column) == (3, "case_id")
    assert "duplicate case id 'c1' (first on row 1)" in problem.message


@pytest.mark.parametrize(
    "case_id, words",
    [("a/b", "must not contain '/'"), ("a\\b", "must not contain"), ("..", "must not contain"),
     ("x" * 65, "65 characters long; at most 64"), ("bell\x07", "non-printable")],
)
def test_bad_case_ids(files, case_id, words):
    problem = only(validate_manifest(files.csv([files.row(case_id)])))
    assert (problem.row, problem.column) == (1, "case_id") and words in problem.message


# --------------------------------------------------------------------------- images


def test_missing_image_file(files):
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/x.png")])))
    assert str(problem) == "row 1, column images: file not found: img/x.png"


def test_no_images(files):
    problem = only(validate_manifest(files.csv([files.row(images=" ")])))
    assert (problem.row, problem.column) == (1, "images") and "no images" in problem.message


def test_image_entry_without_view(files):
    problem = only(validate_manifest(files.csv([files.row(images="img/pa.png")])))
    assert problem.column == "images" and "has no view" in problem.message


def test_unknown_view(files):
    problem = only(validate_manifest(files.csv([files.row(images="OBLIQUE:img/pa.png")])))
    assert (problem.row, problem.column) == (1, "images") and "unknown view 'OBLIQUE'" in problem.message


def test_same_image_twice_in_a_case(files):
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/pa.png;LAT:img/pa.png")])))
    assert "listed twice" in problem.message


def test_zero_byte_image(files):
    files.raw("img/empty.png", b"")
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/empty.png")])))
    assert (problem.row, problem.column) == (1, "images") and "file is empty (0 bytes)" in problem.message


def test_corrupt_png(files):
    data = (files.root / "img/pa.png").read_bytes()
    files.raw("img/cut.png", data[: len(data) // 2])
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/cut.png")])))
    assert problem.column == "images" and "unreadable image" in problem.message and "img/cut.png" in problem.message


def test_unrecognised_image_content(files):
    files.raw("img/notes.png", b"this is not an image at all")
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/notes.png")])))
    assert "not a PNG, JPEG or DICOM file" in problem.message


def test_truncated_dicom(files):
    data = (files.root / "img/ap.dcm").read_bytes()
    files.raw("img/cut.dcm", data[:-2000])
    problem = only(validate_manifest(files.csv([files.row(images="AP:img/cut.dcm")])))
    assert (problem.row, problem.column) == (1, "images")
    assert "unreadable image" in problem.message and "pixel data" in problem.message


def test_priors_are_checked_too(files):
    problem = only(validate_manifest(files.csv([files.row(priors="PA:img/gone.png")])))
    assert (problem.row, problem.column) == (1, "priors") and "file not found" in problem.message


@pytest.mark.parametrize(
    "path, words",
    [("../outside.png", "escapes the manifest's folder"), ("img/../../outside.png", "escapes"),
     ("/etc/passwd", "absolute path"), ("C:\\scans\\a.png", "absolute path")],
)
def test_paths_outside_the_folder(files, path, words):
    files.png("../outside.png")
    problem = only(validate_manifest(files.csv([files.row(images=f"PA:{path}")])))
    assert (problem.row, problem.column) == (1, "images") and words in problem.message


def test_symlink_pointing_out(files, tmp_path):
    target = files.png("../elsewhere/real.png")
    os.symlink(target, files.root / "img" / "link.png")
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/link.png")])))
    assert "points outside the manifest's folder" in problem.message


def test_symlink_inside_is_fine(files):
    os.symlink(files.root / "img" / "pa.png", files.root / "img" / "alias.png")
    assert validate_manifest(files.csv([files.row(images="PA:img/alias.png")])) == []


def test_windows_separators_are_accepted(files):
    cohort = load_manifest(files.csv([files.row(images="PA:img\\pa.png")]))
    assert cohort.cases[0].images[0].relpath == "img/pa.png"


@pytest.mark.parametrize("size", [(8, 80), (64, 10)])
def test_too_small_image(files, size):
    files.png("img/tiny.png", *size)
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/tiny.png")])))
    assert "implausible image size" in problem.message


def test_too_large_image_is_rejected_from_its_header(files):
    # A 20001-px-wide PNG header over a tiny body: the size check must not decode it.
    from PIL import Image

    Image.new("L", (20001, 16)).save(files.root / "img" / "huge.png")
    problem = only(validate_manifest(files.csv([files.row(images="PA:img/huge.png")])))
    assert "implausible image size 20001 x 16" in problem.message


# --------------------------------------------------------------------------- drafts


def test_unknown_model_mode(files):
    problem = only(validate_manifest(files.csv([files.row(model_output="\\boxed{x}", model_mode="chatty")])))
    assert (problem.row, problem.column) == (1, "model_mode") and "unknown model mode 'chatty'" in problem.message


def test_model_id_without_output(files):
    problem = only(validate_manifest(files.csv([files.row(model_output="", model_id="m")])))
    assert (problem.row, problem.column) == (1, "model_id") and "without model_output" in problem.message


def test_reader_author_without_draft(files):
    problem = only(validate_manifest(files.csv([files.row(reader_draft="", reader_draft_author="R1")])))
    assert problem.column == "reader_draft_author"


# --------------------------------------------------------------------------- multiple choice


def mc(files, **cells):
    base = {"mc_question": "Effusion?", "mc_options": "A=Yes|B=No", "mc_answer": "A"}
    base.update(cells)
    return validate_manifest(files.csv([files.row(**base)]))


@pytest.mark.parametrize(
    "options, words",
    [("A=Yes|B No", "malformed option"), ("A=Yes;B=No", "separate options with |"), ("A=Yes|AB=No", "single letter"), ("A=Yes|A=No", "given twice"),
     ("A=Yes", "at least two options"), ("A=Yes|B=", "option B has no text"), ('{"A": "Yes", "B": ', "not valid JSON"),
     ("", "needs options")],
)
def test_malformed_options(files, options, words):
    problem = only(mc(files, mc_options=options, mc_answer=""))
    assert (problem.row, problem.column) == (1, "mc_options") and words in problem.message


def test_json_options_in_csv(files):
    assert mc(files, mc_options='{"A": "Yes", "B": "No"}') == []


def test_answer_not_among_options(files):
    problem = only(mc(files, mc_answer="C"))
    assert (problem.row, problem.column) == (1, "mc_answer")
    assert "answer 'C' is not among the options A, B" in problem.message


def test_mc_without_question(files):
    problem = only(mc(files, mc_question=""))
    assert problem.column == "mc_question"


def test_mc_image_view_must_exist_in_the_case(files):
    problem = only(mc(files, mc_image_view="AP"))
    assert problem.column == "mc_image_view" and "no AP image" in problem.message


def test_mc_items_and_flat_columns_together(files):
    problem = only(mc(files, mc_items='[{"question": "Q", "options": ["a", "b"]}]'))
    assert problem.column == "mc_items" and "not both" in problem.message


def test_jsonl_mc_item_problems_name_the_item(files):
    rows = [files.row("j1", mc_items=[{"question": "Q", "options": {"A": "x", "B": "y"}, "answer": "Z"}])]
    problem = only(validate_manifest(files.jsonl(rows)))
    assert (problem.row, problem.column) == (1, "mc_items") and "mc_items[1].answer" in problem.message


# --------------------------------------------------------------------------- JSONL specifics


def test_invalid_json_line(files):
    path = files.jsonl([files.row("j1"), '{"case_id": "j2", ', files.row("j3")])
    problem = only(validate_manifest(path))
    assert (problem.row, problem.column) == (2, None) and "invalid JSON" in problem.message


def test_json_line_that_is_not_an_object(files):
    problem = only(validate_manifest(files.jsonl([files.row("j1"), "[1, 2]"])))
    assert problem.row == 2 and "must be a JSON object, got a list" in problem.message


def test_jsonl_wrong_types(files):
    problems = validate_manifest(files.jsonl([files.row("j1", indication=5, images=3)]))
    assert sorted((p.row, p.column, p.message) for p in problems) == [
        (1, "images", "must be 'VIEW:path;VIEW:path' text or a list, got a number"),
        (1, "indication", "must be text, got a number"),
    ]


def test_jsonl_missing_key_is_reported_once_per_line(files):
    row = files.row("j1")
    del row["indication"]
    problem = only(validate_manifest(files.jsonl([row])))
    assert (problem.row, problem.column) == (1, "indication") and "missing required key" in problem.message


# --------------------------------------------------------------------------- all at once


def test_every_problem_is_reported_in_one_pass(files):
    files.raw("img/empty.png", b"")
    rows = [
        files.row("c1"),
        files.row("c2", images="PA:img/missing.png;XRAY:img/pa.png"),
        files.row("c1", priors="PA:../up.png"),
        files.row("", images="PA:img/empty.png", model_mode="fast", model_output="\\boxed{x}"),
        files.row("c5", mc_question="Q?", mc_options="A=x|B=y", mc_answer="D"),
    ]
    problems = validate_manifest(files.csv(rows))
    located = sorted((p.row, p.column) for p in problems)
    assert located == [
        (2, "images"), (2, "images"),
        (3, "case_id"), (3, "priors"),
        (4, "case_id"), (4, "images"), (4, "model_mode"),
        (5, "mc_answer"),
    ]
    with pytest.raises(ManifestError) as caught:
        load_manifest(files.root / "manifest.csv")
    assert caught.value.problems == problems
    text = str(caught.value)
    assert text.startswith("8 problems in manifest:")
    assert all(str(p) in text for p in problems)


def test_problem_str_forms():
    assert str(Problem(3, "images", "file not found: img/x.png")) == "row 3, column images: file not found: img/x.png"
    assert str(Problem(None, "foo", "unknown column")) == "column foo: unknown column"
    assert str(Problem(None, None, "manifest is empty")) == "manifest is empty"
    assert isinstance(ManifestError([Problem(None, None, "x")]), ValueError)


def test_validate_does_not_write_anything(files):
    path = files.csv([files.row("c1")])
    before = sorted((p, p.stat().st_mtime_ns) for p in files.root.rglob("*"))
    validate_manifest(path)
    assert sorted((p, p.stat().st_mtime_ns) for p in files.root.rglob("*")) == before


def test_load_accepts_str_paths(files):
    assert load_manifest(str(files.csv([files.row("c1")]))).manifest_path == (files.root / "manifest.csv").resolve()


# --------------------------------------------------------------------------- sites


def test_site_column_is_optional_and_loaded(files):
    cohort = load_manifest(files.csv([files.row("c1", site="site_a"), files.row("c2", site="")]))
    assert [(c.case_id, c.site) for c in cohort.cases] == [("c1", "site_a"), ("c2", None)]
    assert load_manifest(files.csv([files.row("c1")])).cases[0].site is None


def test_bad_site_is_reported_with_its_row_and_column(files):
    problem = only(validate_manifest(files.csv([files.row("c1", site="site_a"), files.row("c2", site="site b")])))
    assert str(problem) == (
        "row 2, column site: site 'site b' must be letters, digits, '.', '_' or '-' (at most 64), e.g. site_a"
    )


def test_site_in_jsonl_must_be_text(files):
    row = {"case_id": "c1", "images": ["PA:img/pa.png"], "indication": "", "site": 3}
    problem = only(validate_manifest(files.jsonl([row])))
    assert (problem.row, problem.column, problem.message) == (1, "site", "must be text, got a number")
