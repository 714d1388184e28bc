"""The design's [study.desk] table (issue #17): the reading desk's study-wide settings, checked like every key."""

from __future__ import annotations

import pytest

from study_app.designs.design import DeskSpec, DesignError, load_design, parse_design, shipped_design_path

BASE = '[study]\nname = "d"\n{desk}\n[roles.r]\n[[arms]]\nkey = "w"\ntask = "write"\nrole = "r"\n'


def test_no_desk_table_gives_the_defaults_and_the_shipped_design_states_them():
    assert parse_design(BASE.format(desk="")).desk == DeskSpec()
    assert DeskSpec().to_json() == {"hanging": ["frontal_lateral", "current_prior", "single"],
                                    "default_window": "file", "show_draft": True}
    assert load_design(shipped_design_path()).desk == DeskSpec()


def test_a_desk_table_is_read():
    desk = parse_design(BASE.format(desk='[study.desk]\nhanging = ["current_prior"]\ndefault_window = "auto"\n'
                                         "show_draft = false\n")).desk
    assert desk == DeskSpec(("current_prior",), "auto", False)


@pytest.mark.parametrize("table, message", [
    ('hanging = ["sideways"]', "study.desk.hanging: expected stages from frontal_lateral, current_prior, single"),
    ('hanging = ["single", "single"]', "each once"),
    ("hanging = []", "study.desk.hanging"),
    ('default_window = "soft"', "study.desk.default_window: 'soft' is not one of"),
    ('show_draft = "yes"', "study.desk.show_draft: expected true or false"),
    ("zoom = 2", "study.desk: unknown key(s) zoom"),
])
def test_a_wrong_desk_key_is_named(table, message):
    with pytest.raises(DesignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_design(BASE.format(desk=f"[study.desk]\n{table}\n"))


def test_the_study_keeps_its_desk_settings(demo_study):
    from study_app.store.models import Study

    db, _ = demo_study
    with db.read() as session:
        assert session.get(Study, "demo").settings["desk"] == DeskSpec().to_json()
