"""`readerstudy analyze` on the demo study with every read done through the services: from the database and
from its export, the same numbers."""

import json
import random

from click.testing import CliRunner
from sqlalchemy import select

from study_app.cli import main
from study_app.services import reading
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.export import write_export
from study_app.store.models import Reader


def complete_every_read(db, seed=0):
    """Read the whole study: residents first (their reports release the attendings' cases), then the rest."""
    rng = random.Random(seed)
    with db.read() as s:
        readers = [(r.id, r.reader_key, r.role) for r in s.scalars(select(Reader).order_by(Reader.id))]
    order = {"resident": 0, "attending": 1, "radiologist": 2}
    for rid, key, _role in sorted(readers, key=lambda r: order.get(r[2], 3)):
        actor = reader_actor(rid, key)
        while (item := reading.worklist(db, actor).next_item()) is not None:
            view = reading.open_case(db, actor, item.case_ref)
            reading.mark_image_shown(db, actor, item.case_ref)
            text = None
            if view.task == "write":
                text = "No acute cardiopulmonary process."
            elif view.task == "edit":
                text = view.editor_text if rng.random() < 0.3 else view.editor_text + " Mild degenerative changes."
            reading.submit(db, actor, item.case_ref, text, active_s=1.0, hidden_s=0.0, idle_s=0.0)
            if view.questions:
                answers = {q.key: rng.choice(q.options)["value"] for q in view.questions}
                reading.save_answers(db, actor, item.case_ref, answers)


def test_analyze_from_database_and_from_export_agree(sqlite_demo_study, tmp_path):
    db, _ = sqlite_demo_study
    complete_every_read(db)
    runner = CliRunner()
    from_db = runner.invoke(main, ["analyze", db.url, "--study", "demo", "--out", str(tmp_path / "db"),
                                   "--n-boot", "200"], catch_exceptions=False)
    assert from_db.exit_code == 0, from_db.output
    export = write_export(db, SYSTEM, "demo", tmp_path / "export")
    from_folder = runner.invoke(main, ["analyze", str(export), "--out", str(tmp_path / "folder"), "--n-boot", "200"],
                                catch_exceptions=False)
    assert from_folder.exit_code == 0, from_folder.output
    html = (tmp_path / "db" / "report.html").read_text()
    assert "<html" in html.lower() and "plotly" in html.lower()
    a = json.loads((tmp_path / "db" / "results.json").read_text())
    b = json.loads((tmp_path / "folder" / "results.json").read_text())
    a.pop("generated_at", None), b.pop("generated_at", None)
    for results in (a, b):  # two exports and two analyses: their moments differ, every other figure may not
        assert results["provenance"].pop("analysed_at") and results["provenance"].pop("exported_at")
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def test_analyze_refuses_a_folder_without_an_export(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 5 and result.output.startswith("error: cannot analyse")


def test_analyze_a_database_needs_the_study(tmp_path):
    result = CliRunner().invoke(main, ["analyze", "sqlite:///x.sqlite", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--study" in result.output
