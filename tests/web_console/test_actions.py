"""What the console pages do when a coordinator uses them: create, invite, draft, launch, watch, export, intervene."""

from __future__ import annotations

import io
import shutil
import zipfile

from study_app.services import auth, reading
from study_app.services.console import audit_log, reader_links
from study_app.services.drafting import drafts_status
from study_app.services.studies import list_studies, study_summary
from tests.web_console.conftest import COORDINATOR
from tests.web_console.test_uploads import READERS_CSV, break_images_of_row, zip_folder


def shown(at) -> str:
    """Everything a coordinator reads on the page, as one text."""
    parts = [e.value for kind in ("title", "subheader", "text", "code", "caption", "markdown", "error", "success",
                                  "info", "warning") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts).replace("\\", "")


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def click(at, label: str, timeout: float = 30):
    return button(at, label).click().run(timeout=timeout)


def submit(at, label: str, timeout: float = 60):
    return next(b for b in at.get("form_submit_button") if b.label == label).click().run(timeout=timeout)


def finish_first_case(db, reader_key: str = "res1"):
    """A reader signs in with a fresh link and completes their first case (through the services)."""
    from study_app.services.invites import issue_invites

    token = issue_invites(db, COORDINATOR, "demo", [reader_key])[0].token
    _, actor = auth.exchange_invite(db, token)
    item = reading.worklist(db, actor).items[0]
    view = reading.open_case(db, actor, item.case_ref)
    reading.mark_image_shown(db, actor, item.case_ref)
    reading.submit(db, actor, item.case_ref, "Lungs clear." if view.task in ("write", "edit") else None)
    reading.save_answers(db, actor, item.case_ref, {q.key: q.options[0]["value"] for q in view.questions})
    return item


# --- studies ---------------------------------------------------------------------------------------------


def stage_zip(db, study_id: str, cohort_zip: bytes) -> None:
    """The zip as PUT /console/upload/<study id> leaves it on the server (streamed in chunks)."""
    from study_app.services.uploads import begin_upload

    writer = begin_upload(db, COORDINATOR, study_id, len(cohort_zip))
    for start in range(0, len(cohort_zip), 65536):
        writer.write(cohort_zip[start:start + 65536])
    writer.finish()


def fill_create_form(at, study_id: str, cohort_zip: bytes, readers: str = READERS_CSV, *, db=None):
    from study_app.web.database import shared_database

    stage_zip(db or shared_database(), study_id, cohort_zip)
    at.text_input[0].input(study_id)
    uploads = {u.label: u for u in at.file_uploader}
    assert "Cohort zip" not in uploads, "a cohort zip never goes through Streamlit's in-memory uploader"
    uploads["Readers CSV (reader_id, role, label)"].upload("readers.csv", readers.encode(), "text/csv")
    return submit(at, "Check and create")


def test_create_a_study_from_an_uploaded_zip(console_study, console_page):
    at = fill_create_form(console_page("console-studies"), "upload1", zip_folder(console_study.cohort))
    assert not at.exception, at.exception
    assert "Created study upload1: 12 cases, 8 readers" in shown(at)
    assert "upload1" in {s.study_id for s in list_studies(console_study.db, COORDINATOR)}
    assert (console_study.path.parent / "cohorts" / "upload1" / "manifest.csv").is_file()
    assert not (console_study.path.parent / "cohorts" / ".uploads" / "upload1.zip").exists(), "the staged zip is used up"
    assert at.session_state["console_study"] == "upload1"


def test_create_with_a_bad_manifest_lists_rows_and_creates_nothing(console_study, console_page, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(console_study.cohort, broken)
    break_images_of_row(broken / "manifest.csv", 3)
    at = fill_create_form(console_page("console-studies"), "broken1", zip_folder(broken))
    assert "Nothing was created" in shown(at)
    assert "manifest row 3, column images" in shown(at)
    assert "broken1" not in {s.study_id for s in list_studies(console_study.db, COORDINATOR)}
    assert not (console_study.path.parent / "cohorts" / "broken1").exists()
    # The uploaded zip stays for another try (a fixed readers CSV, say) until a study uses it.
    assert (console_study.path.parent / "cohorts" / ".uploads" / "broken1.zip").is_file()


def test_create_without_a_readers_csv_says_so(console_study, console_page):
    at = console_page("console-studies")
    at.text_input[0].input("noreaders")
    at = submit(at, "Check and create")
    assert "readers: upload the readers CSV" in shown(at)
    assert "noreaders" not in {s.study_id for s in list_studies(console_study.db, COORDINATOR)}


# --- readers -------------------------------------------------------------------------------------------


def test_issued_link_is_shown_once_and_signs_the_reader_in(console_study, console_page):
    at = console_page("console-readers", study="demo")
    at.multiselect[0].select("res2")
    at = click(at, "Issue links")
    links = [c.value for c in at.code if "/signin?token=" in c.value]
    assert len(links) == 1
    token = links[0].split("token=", 1)[1]
    _, actor = auth.exchange_invite(console_study.db, token)
    assert actor.name == "res2"
    at = click(at, "Hide the links")
    assert not [c for c in at.code if "/signin?token=" in c.value]


def test_revoke_cuts_the_link(console_study, console_page):
    at = console_page("console-readers", study="demo")
    at = at.selectbox[1].select("att1").run()
    at = click(at, "Revoke links and sessions")
    assert "Revoked att1" in shown(at)
    links = reader_links(console_study.db, COORDINATOR, "demo").set_index("reader")["link"]
    assert links["att1"] == "revoked" and links["att2"] == "issued"


def test_adding_a_reader_before_launch_and_refused_after(console_study, console_page):
    at = console_page("console-readers", study="pilot")
    at.text_input[1].input("res3")
    at = submit(at, "Add reader")
    assert "Added res3" in shown(at)
    assert study_summary(console_study.db, COORDINATOR, "pilot").n_readers == 9
    at = console_page("console-readers", study="demo")
    at.text_input[1].input("res3")
    at = submit(at, "Add reader")
    assert "Not added" in shown(at) and "frozen at launch" in shown(at)


# --- drafts and launch -------------------------------------------------------------------------------


def test_pilot_from_checklist_to_launch(console_study, console_page):
    db = console_study.db
    at = console_page("console-launch", study="pilot")
    assert "[ ] every case has the drafts its arms need" in shown(at)
    assert "[ ] every reader has a personal link" in shown(at)
    assert button(at, "Launch the study").disabled

    at = click(console_page("console-drafts", study="pilot"), "Import recorded outputs")
    assert "draft(s) stored" in shown(at)
    assert all(r.stored for r in drafts_status(db, COORDINATOR, "pilot"))
    click(console_page("console-readers", study="pilot"), "Issue links")

    at = console_page("console-launch", study="pilot")
    assert "[x] every case has the drafts its arms need" in shown(at)
    assert "[x] every reader has a personal link" in shown(at)
    at = click(at, "Launch the study")
    assert study_summary(db, COORDINATOR, "pilot").status == "open"
    assert "Frozen at launch" in shown(at)
    # Launching again, or importing drafts after launch, is refused by the services: the page says so.
    at = click(at, "Launch the study")
    assert "Not launched" in shown(at) and "launched once" in shown(at)
    at = click(console_page("console-drafts", study="pilot"), "Import recorded outputs")
    assert "Nothing imported" in shown(at) and "frozen at launch" in shown(at)


def test_generation_against_an_unreachable_server_reports_the_failure(console_study, console_page):
    at = console_page("console-drafts", study="pilot")
    at.text_input[0].input("http://127.0.0.1:9")
    at.number_input[1].set_value(1)
    at = submit(at, "Start generating")
    assert "Drafting job 1 queued" in shown(at)
    from study_app.services.drafting_jobs import study_jobs, work

    # The page queued a job; a worker (here in the test, as `serve` runs one) runs it to its failure.
    assert work(console_study.db, once=True) == 1
    job = study_jobs(console_study.db, COORDINATOR, "pilot")[0]
    assert job.status == "failed" and "not healthy" in job.error
    at = console_page("console-drafts", study="pilot")
    assert "Drafting job 1 failed" in shown(at)
    assert not any(r.stored for r in drafts_status(console_study.db, COORDINATOR, "pilot"))


def test_generation_needs_an_http_url(console_study, console_page):
    at = console_page("console-drafts", study="pilot")
    at.text_input[0].input("gpu-host:8000")
    at = submit(at, "Start generating")
    assert "Not started" in shown(at) and "not an http(s) URL" in shown(at)


# --- progress, data, interventions ---------------------------------------------------------------------


def test_progress_shows_a_finished_case(console_study, console_page):
    finish_first_case(console_study.db)
    at = console_page("console-progress", study="demo")
    assert [m.value for m in at.metric][:2] == ["68", "1"]
    assert len(at.get("plotly_chart")) == 3  # arms, readers, and now time per case
    assert "No case submitted yet" not in shown(at)


def test_export_download_holds_every_table(console_study, console_page):
    at = click(console_page("console-data", study="demo"), "Prepare the export")
    download = at.get("download_button")
    assert any("export" in d.proto.label for d in download)
    from study_app.services.console import export_zip

    names = zipfile.ZipFile(io.BytesIO(export_zip(console_study.db, COORDINATOR, "demo"))).namelist()
    # The data dictionary's six tables, the two of the error annotation and the two of the detection task
    # (docs/export.md), and the metadata.
    assert sorted(names) == sorted(f"demo/{n}" for n in ["assignments.csv", "answers.csv", "drafts.csv",
                                                         "cases.csv", "readers.csv", "events.csv",
                                                         "draft_errors.csv", "draft_error_counts.csv",
                                                         "detection_marks.csv", "case_labels.csv",
                                                         "export_meta.json"])


def test_run_analysis_shows_the_report(console_study, console_page):
    finish_first_case(console_study.db)
    at = console_page("console-data", study="demo")
    at.number_input[0].set_value(100)
    at = click(at, "Run the analysis", timeout=120)
    assert not at.exception, at.exception
    assert "Download the report (HTML)" in [d.proto.label for d in at.get("download_button")]
    assert len(at.get("iframe")) == 1


def test_blinding_audit_runs_from_the_data_page(console_study, console_page):
    at = console_page("console-data", study="demo")
    at.checkbox[0].uncheck()  # worklists, identifiers and routes only: the pages are the CLI tests' part
    at = click(at, "Run the blinding audit", timeout=180)
    assert not at.exception, at.exception
    assert "No presentation feature predicts the draft source" in shown(at)
    assert "36 blinded case(s) of 4 reader(s), 36 held for a later round" in shown(at)


def test_analysis_missing_is_said(console_study, console_page, monkeypatch):
    import study_app.web.console.data as data_page

    monkeypatch.setattr(data_page, "analysis_available", lambda: False)
    at = console_page("console-data", study="demo")
    assert "analysis package is not available" in shown(at)
    assert "Run the analysis" not in [b.label for b in at.button]


def test_pause_needs_a_reason_then_pauses(console_study, console_page):
    at = submit(console_page("console-interventions", study="demo"), "Apply")
    assert "Cannot pause" in shown(at) and "say why" in shown(at)
    assert study_summary(console_study.db, COORDINATOR, "demo").status == "open"
    at.text_input[0].input("scanner room closed")
    at = submit(at, "Apply")
    assert study_summary(console_study.db, COORDINATOR, "demo").status == "paused"
    pause = audit_log(console_study.db, COORDINATOR, "demo").iloc[0]
    assert pause["kind"] == "pause" and pause["payload"]["reason"] == "scanner room closed"


def test_close_needs_the_confirmation(console_study, console_page):
    at = console_page("console-interventions", study="demo")
    at.selectbox[1].select("close")
    at.text_input[0].input("study over")
    at = submit(at, "Apply")
    assert "Not closed" in shown(at)
    assert study_summary(console_study.db, COORDINATOR, "demo").status == "open"


def test_reset_needs_a_reason_and_resets(console_study, console_page):
    item = finish_first_case(console_study.db, "res1")
    at = console_page("console-interventions", study="demo")
    at.number_input[0].set_value(item.position)
    at = submit(at, "Reset the case")
    assert "Not reset" in shown(at) and "needs a reason" in shown(at)
    at.text_area[0].input("reader opened the wrong case")
    at = submit(at, "Reset the case")
    assert f"Case {item.position} of res1 reset" in shown(at)
    assert audit_log(console_study.db, COORDINATOR, "demo").iloc[0]["kind"] == "reset"


# --- interventions: locked sign-ins ----------------------------------------------------------------------


def test_a_locked_sign_in_is_unlocked_from_the_console_and_audited(console_study, console_page):
    from sqlalchemy import select

    from study_app.services.throttle import locked_sign_ins
    from study_app.store.models import Event, SignInThrottle, utcnow

    assert "Locked sign-ins" not in shown(console_page("console-interventions", study="demo"))
    with console_study.db.transaction() as session:
        session.add(SignInThrottle(kind="user", key="mallory-target", failures=11, locked_at=utcnow()))
    at = console_page("console-interventions", study="demo")
    assert "Locked sign-ins" in shown(at)
    at.text_input(key="console_unlock_reason").input("she called from the ward")
    at = submit(at, "Unlock")
    assert "Unlocked username mallory-target." in shown(at)
    assert locked_sign_ins(console_study.db, COORDINATOR) == []
    with console_study.db.read() as session:
        event = session.scalars(select(Event).where(Event.kind == "sign_in_unlocked")).one()
    assert event.actor == "coordinator:coord" and event.payload["reason"] == "she called from the ward"


# --- drafts checked before launch (issue #14) --------------------------------------------------------------


def test_drafts_with_problems_come_first_and_are_accepted_with_a_reason(console_study, console_page):
    from study_app.services.console import vllm_server_backend
    from study_app.services.draft_review import draft_issues
    from study_app.services.drafting import generate_drafts
    from tests.fakes.openai_server import default_reply, serve_openai

    db = console_study.db
    cut = lambda body: "length" if "boxed{A}" not in default_reply(body) else None  # noqa: E731 - every findings draft
    with serve_openai(fail_when=cut) as server:
        generate_drafts(db, COORDINATOR, "pilot", vllm_server_backend(server.url), concurrency=4)
    issues = draft_issues(db, COORDINATOR, "pilot")
    assert issues and all(i.problems == ("cut",) for i in issues)

    at = console_page("console-drafts", study="pilot")
    text = shown(at)
    assert text.index("Drafts with problems") < text.index("Generate with a vLLM server")
    assert f"{len(issues)} draft(s) readers would see are cut" in text
    assert at.dataframe[0].value["problems"].tolist() == ["cut"] * len(issues)
    status = at.dataframe[1].value
    assert status["problems"].tolist()[:len(issues)] == ["cut"] * len(issues)  # the status table lists them first

    launch = console_page("console-launch", study="pilot")
    assert f"{len(issues)} draft(s) readers would see have problems ({len(issues)} cut)" in shown(launch)
    assert button(launch, "Launch the study").disabled

    at.multiselect[0].set_value([i.case_key for i in issues])
    next(t for t in at.text_input if t.label.startswith("Why")).input("cut after the last finding; nothing missing")
    at = submit(at, "Accept")
    assert f"Accepted {len(issues)} draft(s)" in shown(at)
    assert all(i.accepted for i in draft_issues(db, COORDINATOR, "pilot"))
    click(console_page("console-readers", study="pilot"), "Issue links")
    launch = console_page("console-launch", study="pilot")
    assert "note: " in shown(launch) and "accepted by coordinator:coord" in shown(launch)
    assert not button(launch, "Launch the study").disabled


def test_a_regeneration_from_the_drafts_page_replaces_the_cut_drafts(console_study, console_page):
    from study_app.services.console import vllm_server_backend
    from study_app.services.draft_review import draft_issues
    from study_app.services.drafting import generate_drafts
    from study_app.services.drafting_jobs import study_jobs, work
    from tests.fakes.openai_server import default_reply, serve_openai

    db = console_study.db
    cut = lambda body: "length" if body["max_tokens"] == 1024 and "boxed{A}" not in default_reply(body) else None  # noqa: E731
    with serve_openai(fail_when=cut) as server:
        generate_drafts(db, COORDINATOR, "pilot", vllm_server_backend(server.url), concurrency=4)
        assert draft_issues(db, COORDINATOR, "pilot")
        at = console_page("console-drafts", study="pilot")
        next(t for t in at.text_input if t.label.startswith("Server URL")).input(server.url)
        next(n for n in at.number_input if n.label.startswith("Token budget")).set_value(2048)
        next(c for c in at.checkbox if c.label.startswith("Only regenerate")).check()
        at = submit(at, "Start generating")
        [job] = study_jobs(db, COORDINATOR, "pilot")
        assert job.parameters["regenerate"] == {"case_keys": [], "problems_only": True}
        assert job.parameters["max_tokens"] == 2048
        assert work(db, once=True) == 1  # a worker runs the job, as `readerstudy serve` does
    assert study_jobs(db, COORDINATOR, "pilot")[0].status == "succeeded"
    assert draft_issues(db, COORDINATOR, "pilot") == []
    at.run(timeout=60)  # the page that watched the job draws again, tables included
    assert "finished" in shown(at) and "Drafts with problems" not in shown(at)


def test_the_launch_page_rehearses_the_study_in_a_process_of_its_own(console_study, console_page):
    at = console_page("console-launch", study="pilot")
    at = click(at, "Rehearse the study", timeout=300)
    text = shown(at)
    assert "Rehearsed: the real launch would refuse" in text  # pilot has no model drafts yet
    assert "missing draft(s) were made up for the rehearsal" in text and "68 of 68 assignments read" in text
    assert any(b.label == "Download the rehearsal's report (HTML)" for b in at.get("download_button"))
    assert study_summary(console_study.db, COORDINATOR, "pilot").status == "draft"
    from study_app.services.drafting import drafts_status

    assert not any(r.stored for r in drafts_status(console_study.db, COORDINATOR, "pilot"))
    # After launch there is nothing to rehearse: the page no longer offers it.
    at = console_page("console-launch", study="demo")
    assert not any(b.label == "Rehearse the study" for b in at.button)
