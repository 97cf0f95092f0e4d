"""AppTest of the Decision quality, Compare runs and Class challenge pages with real tiny runs."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import tiny_runs
from playground.runs.leaderboard import Challenge, ChallengeBoard
from playground.settings import TEACHER_CODE_ENV
from playground.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
OWNER_KEY = "pg_owner"  # where playground.ui.session keeps this session's id


@pytest.fixture(scope="module")
def trained():
    return tiny_runs.trained("shapes")


def save(trained, name, owner=None, info=None):
    spec, data, result = trained
    return RunStore().save(result, spec, info or data, name=name, owner=owner)


def page(name):
    return AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120)


def no_exception(at):
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_decision_quality_page(trained):
    record = save(trained, "judge me")
    at = page("5_Decision_quality.py")
    at.run()
    no_exception(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy"] == f"{record.metrics['test_accuracy']:.2%}"
    assert shown["Mistakes"].endswith("of 1000")
    # Pick the last confusion cell: its images and their count come up.
    key = f"quality_cell_{record.run_id}"
    options = at.selectbox(key=key).options
    assert len(options) >= 2 and options[0].startswith("true ")
    at.selectbox(key=key).select_index(len(options) - 1).run()
    no_exception(at)
    t, p = (int(v) for v in at.selectbox(key=key).value.split("-"))
    names = record.class_names
    assert any(f"of **{names[t]}** predicted as **{names[p]}**" in m.value for m in at.markdown)
    at.select_slider(key="quality_mistake_count").set_value(12).run()
    no_exception(at)
    assert any("The **12** most confident mistakes" in m.value for m in at.markdown)
    at.radio(key="quality_projection_method").set_value("tsne").run()
    no_exception(at)
    assert any("Click a dot" in i.value for i in at.info)
    assert any("over-fitting" in e.value for e in [*at.caption, *at.warning])


def test_compare_page_lists_damaged_runs_and_manages_runs(trained):
    a = save(trained, "first")
    b = save(trained, "second")
    root = RunStore().root
    (root / "20200101-000000000-dead").mkdir()
    (root / "20200101-000000000-dead" / "meta.json").write_text("{not json")
    (root / "stray folder").mkdir()
    at = page("6_Compare_runs.py")
    at.run()
    no_exception(at)
    table = at.dataframe[0].value
    assert len(table) == 4 and set(table["name"]) >= {"first", "second"}
    assert table["status"].str.startswith("damaged").sum() == 2
    assert any("damaged" in w.value for w in at.warning)
    assert any("tensorboard --logdir" in c.value for c in at.caption)
    # Identical runs: the ensemble equals each member.
    assert at.multiselect(key="compare_members").value == [b.run_id, a.run_id]
    at.button(key="compare_ensemble").click().run()
    no_exception(at)
    ensemble = next(m for m in at.metric if m.label == "Ensemble test accuracy")
    assert ensemble.value == f"{a.metrics['test_accuracy']:.2%}"
    assert "+0.00" in ensemble.delta
    # Rename, then delete with confirmation.
    at.selectbox(key="compare_manage_run").set_value(a.run_id).run()
    at.text_input(key=f"compare_name_{a.run_id}").set_value("renamed run").run()
    at.button(key="compare_rename").click().run()
    no_exception(at)
    assert RunStore().load(a.run_id).name == "renamed run"
    at.selectbox(key="compare_manage_run").set_value(a.run_id).run()
    at.button(key="compare_delete").click().run()
    assert any("for good" in w.value for w in at.warning)
    assert (root / a.run_id).exists()
    at.button(key="compare_delete_yes").click().run()
    no_exception(at)
    assert not (root / a.run_id).exists()
    assert any("Deleted" in s.value for s in at.success)


def test_compare_page_refuses_mismatched_ensemble(trained):
    spec, data, _ = trained
    a = save(trained, "normal")
    b = save(trained, "other classes", info={**data.info(), "class_names": list(data.class_names[::-1])})
    at = page("6_Compare_runs.py")
    at.run()
    at.multiselect(key="compare_members").set_value([a.run_id, b.run_id]).run()
    at.button(key="compare_ensemble").click().run()
    assert not at.exception
    assert any("same class names" in e.value for e in at.error)


def test_compare_page_protects_other_sessions_runs_with_teacher_code(trained, monkeypatch):
    monkeypatch.setenv(TEACHER_CODE_ENV, "owl")
    mine = save(trained, "mine", owner="me")
    save(trained, "theirs", owner="someone else")
    save(trained, "teacher's demo", owner=None)  # saved from the command line
    at = page("6_Compare_runs.py")
    at.session_state[OWNER_KEY] = "me"
    at.run()
    no_exception(at)
    options = at.selectbox(key="compare_manage_run").options
    assert len(options) == 1 and options[0].startswith(f"mine · shapes · test acc {mine.metrics['test_accuracy']:.1%}")
    at.text_input(key="compare_teacher_code").set_value("owl").run()
    assert len(at.selectbox(key="compare_manage_run").options) == 3


@pytest.mark.parametrize("page_name, key", [
    ("6_Compare_runs.py", "compare_runs"), ("5_Decision_quality.py", None), ("7_Predict.py", None),
])
def test_private_runs_show_each_session_only_its_own_and_the_cli_runs(trained, monkeypatch, page_name, key):
    monkeypatch.setenv("PLAYGROUND_PRIVATE_RUNS", "1")
    save(trained, "mine", owner="me")
    save(trained, "theirs", owner="someone else")
    save(trained, "from the command line", owner=None)
    at = page(page_name)
    at.session_state[OWNER_KEY] = "me"
    at.run()
    no_exception(at)
    # Every run picker on the page offers the session's run and the CLI run, never another session's.
    pickers = [w for w in list(at.selectbox) + list(at.multiselect)
               if any(" · shapes · " in str(option) for option in w.options)]
    assert pickers, "no run picker on the page"
    for picker in pickers:
        names = {str(option).split(" · ")[0] for option in picker.options if " · shapes · " in str(option)}
        assert names == {"mine", "from the command line"}, (picker.key, names)
    if key:
        assert not any("theirs" in str(row) for row in at.dataframe[0].value.to_dict("records"))

    monkeypatch.setenv("PLAYGROUND_PRIVATE_RUNS", "0")  # a personal server shows every run
    at.run()
    assert any("theirs" in str(option) for picker in list(at.selectbox) + list(at.multiselect) for option in picker.options)


def test_challenge_page_submit_own_run_only(trained):
    ChallengeBoard().set_challenge(Challenge("shapes", 0.0, 100_000))
    mine = save(trained, "my shapes run", owner="student-1")
    save(trained, "not mine", owner="student-2")
    at = page("8_Class_challenge.py")
    at.session_state[OWNER_KEY] = "student-1"
    at.run()
    no_exception(at)
    assert any("Target: >= 0.0% test accuracy on Shapes" in m.value for m in at.markdown)
    assert at.selectbox(key="challenge_run").options[0].startswith("my shapes run")
    assert len(at.selectbox(key="challenge_run").options) == 1  # the other session's run is not offered
    at.text_input(key="challenge_name").set_value("<script>").run()
    at.button(key="challenge_submit").click().run()
    assert any("may not contain" in e.value for e in at.error)
    at.text_input(key="challenge_name").set_value("Ada").run()
    at.button(key="challenge_submit").click().run()
    no_exception(at)
    board = at.dataframe[0].value
    assert list(board["name"]) == ["Ada (you)"] and list(board["meets target"]) == [True]
    assert board["spec"][0].startswith("/Playground?dataset=shapes")
    assert "student-1" not in board.to_string() and mine.run_id not in board.to_string()
    # Another student sees the entry without the "(you)" mark and cannot withdraw it.
    other = page("8_Class_challenge.py")
    other.session_state[OWNER_KEY] = "student-2"
    other.run()
    assert list(other.dataframe[0].value["name"]) == ["Ada"]
    assert not [b for b in other.button if b.key == "challenge_withdraw"]


def test_challenge_page_teacher_sets_target(monkeypatch):
    monkeypatch.delenv(TEACHER_CODE_ENV, raising=False)
    at = page("8_Class_challenge.py")
    at.run()
    no_exception(at)
    assert any("No challenge has been set" in i.value for i in at.info)
    assert any("anyone using this machine may change" in c.value for c in at.caption)
    at.selectbox[0].set_value("digits")
    at.number_input[0].set_value(95.0)
    at.number_input[1].set_value(5000)
    at.text_input[0].set_value("Smallest wins")
    at.text_input[1].set_value("pw")  # new teacher code
    at.button[0].click().run()
    no_exception(at)
    assert ChallengeBoard().challenge() == Challenge("digits", 0.95, 5000, "Smallest wins")
    assert ChallengeBoard().code_required()
    assert any("Target: >= 95.0% test accuracy on 8x8 digits" in m.value for m in at.markdown)


def test_without_a_teacher_code_a_browser_elsewhere_cannot_set_the_challenge(monkeypatch):
    from playground.ui import class_challenge_page

    monkeypatch.delenv(TEACHER_CODE_ENV, raising=False)
    monkeypatch.setattr(class_challenge_page, "on_this_machine", lambda: False)  # a student's browser on the LAN
    at = page("8_Class_challenge.py")
    at.run()
    no_exception(at)
    assert any("can be set only from the server's own machine" in w.value and "serve --classroom" in w.value for w in at.warning)
    assert not at.button and not at.number_input  # no form, no "Clear the leaderboard"
    # Once the teacher has chosen a code on the server's machine, it works from anywhere.
    ChallengeBoard().set_challenge(Challenge("digits", 0.9), new_code="owl")
    at.run()
    no_exception(at)
    assert any("chosen when the challenge was set" in c.value for c in at.caption) and at.number_input


def test_the_note_and_student_names_are_shown_as_plain_text(trained, monkeypatch):
    monkeypatch.delenv(TEACHER_CODE_ENV, raising=False)
    note = "Free marks: [click here](http://example.com/x) **now** :red[hurry]"
    ChallengeBoard().set_challenge(Challenge("shapes", 0.0, 100_000, note))
    save(trained, "[my run](http://example.com/run)", owner="student-1")
    at = page("8_Class_challenge.py")
    at.session_state[OWNER_KEY] = "student-1"
    at.run()
    no_exception(at)
    assert [t.value for t in at.text] == [note]
    at.text_input(key="challenge_name").set_value("[Ada](http://example.com)").run()
    at.button(key="challenge_submit").click().run()
    no_exception(at)
    assert list(at.dataframe[0].value["name"]) == ["[Ada](http://example.com) (you)"]  # a table cell: plain text
    shown = [m.value for m in [*at.markdown, *at.caption, *at.success, *at.info, *at.warning]]
    assert any("Submitted as" in text for text in shown)
    assert not any("](http" in text for text in shown)


@pytest.mark.parametrize("address, headers, local", [
    (None, {}, True),  # Streamlit gives no address for localhost
    ("192.168.1.20", {}, False),  # a browser on the LAN
    (None, {"X-Forwarded-For": "192.168.1.20"}, False),  # through a reverse proxy on this machine
])
def test_on_this_machine_reads_the_connection(monkeypatch, address, headers, local):
    from types import SimpleNamespace

    from playground.ui import class_challenge_page

    monkeypatch.setattr(class_challenge_page.st, "context", SimpleNamespace(ip_address=address, headers=headers))
    assert class_challenge_page.on_this_machine() is local
