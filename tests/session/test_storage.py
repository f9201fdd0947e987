"""The home's files without tmux: the schema checked field by field on load, private modes, symlinks,
the field-level merge, the serialiser, coalesced writes, and claude-squad's nanosecond times."""

from __future__ import annotations

import copy
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squadnb.cli import main
from squadnb.errors import StateFileError
from squadnb.session import Squad
from squadnb.session._storage import (DIFF_TEXT_LIMIT, Change, InstanceData, Store, _Doc,
                                      merge_entry, parse_time)

NS_TIME = "2025-01-02T03:04:05.123456789+01:00"


def entry(title: str = "a", **fields: Any) -> dict[str, Any]:
    """A started instance's entry as claude-squad writes it."""
    base = {"title": title, "path": "/repo", "branch": f"u/{title}", "status": 1, "height": 0,
            "width": 0, "created_at": NS_TIME, "updated_at": NS_TIME, "auto_yes": False,
            "program": "claude",
            "worktree": {"repo_path": "/repo", "worktree_path": f"/h/worktrees/{title}",
                         "session_name": title, "branch_name": f"u/{title}",
                         "base_commit_sha": "9f2c", "is_existing_branch": False},
            "diff_stats": {"added": 1, "removed": 2, "content": "diff"}}
    base.update(fields)
    return base


def write_state(home: Path, instances: list[Any], name: str = "state.json", **top: Any) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / name
    path.write_text(json.dumps({"help_screens_seen": 3, **top, "instances": instances}, indent=2))
    return path


def open_squad(home: Path, **kwargs: Any) -> Squad:
    return Squad(home=home, repo=home, tmux_socket="squadnb-storage-unused", **kwargs)


def nested(path: str, value: Any) -> dict[str, Any]:
    """An entry with the dotted field ``path`` set to ``value``."""
    made = entry()
    keys = path.split(".")
    target = made
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return made


BAD_FIELDS = [
    ("status", -5), ("status", 4), ("status", "1"), ("status", True), ("status", 1.0),
    ("created_at", 5), ("created_at", "2025-01-02T03:04:05"), ("updated_at", "yesterday"),
    ("created_at", "2025-01-02"), ("height", -1), ("width", "0"), ("auto_yes", "no"),
    ("auto_yes", 1), ("program", 5), ("program", "cl\u0000aude"), ("path", None), ("branch", []),
    ("title", 5), ("title", ""), ("worktree", 5), ("worktree.worktree_path", 5),
    ("worktree.repo_path", "a\u0000b"), ("worktree.is_existing_branch", "yes"),
    ("worktree.base_commit_sha", None), ("diff_stats", "big"), ("diff_stats.added", "abc"),
    ("diff_stats.removed", -1), ("diff_stats.added", 2**63), ("diff_stats.content", 5),
    ("prompt", 5),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_every_entry_field_is_checked_on_load(tmp_path: Path, field: str, value: Any) -> None:
    home = tmp_path / "home"
    path = write_state(home, [entry("ok"), nested(field, value)])
    before = path.read_bytes()
    with pytest.raises(StateFileError) as caught:
        open_squad(home)
    message = str(caught.value)
    assert str(path) in message and f"instances[1].{field}" in message and "left as is" in message
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["state.json", "pending.json"])
def test_top_level_shape_is_checked(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    cases = [({"instances": 5}, "instances"), ({"help_screens_seen": -1, "instances": []},
             "help_screens_seen"), ([1, 2], "is not an object"),
             ({"instances": [entry("x"), entry("x")]}, '"x" appears twice'),
             ({"instances": [{"status": 1}]}, "instances[0].title: is missing")]
    for document, words in cases:
        path = home / name
        home.mkdir(exist_ok=True)
        path.write_text(json.dumps(document))
        with pytest.raises(StateFileError) as caught:
            open_squad(home)
        assert str(path) in str(caught.value) and words in str(caught.value)
        assert path.read_text() == json.dumps(document)


def test_naive_and_aware_times_mixed_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_state(home, [entry("aware"), entry("naive", created_at="2025-01-02T03:04:05.5")])
    with pytest.raises(StateFileError, match=r"instances\[1\].created_at: .*time zone"):
        open_squad(home)
    assert json.loads(path.read_text())["instances"][1]["created_at"] == "2025-01-02T03:04:05.5"


RAW_FILES = [
    ("nesting", b"[" * 100_000, "nested too deeply"),
    ("long number", b'{"help_screens_seen": ' + b"7" * 5000 + b', "instances": []}', "not valid JSON"),
    ("invalid utf-8", b'{"instances": [{"title": "\xff\xfe"}]}', "not valid UTF-8 (byte 26)"),
    ("NaN", b'{"help_screens_seen": NaN, "instances": []}', "not valid JSON"),
    ("infinity", b'{"x": 1e999, "instances": []}', "out of range"),
    ("not json", b"{not json", "not valid JSON"),
]


@pytest.mark.parametrize(("raw", "words"), [(r, w) for _, r, w in RAW_FILES],
                         ids=[name for name, _, _ in RAW_FILES])
@pytest.mark.parametrize("name", ["state.json", "pending.json", "config.json"])
def test_unparsable_files_raise_state_file_error(tmp_path: Path, name: str, raw: bytes,
                                                 words: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / name).write_bytes(raw)
    with pytest.raises(StateFileError) as caught:
        open_squad(home)
    assert str(home / name) in str(caught.value) and words in str(caught.value)
    assert (home / name).read_bytes() == raw


BAD_CONFIG = [
    ("profiles", 5), ("profiles", [5]), ("profiles", [{"name": 5, "program": "x"}]),
    ("profiles", [{"name": "a", "program": None}]), ("auto_yes", "no"), ("auto_yes", 0),
    ("daemon_poll_interval", 0), ("daemon_poll_interval", -1), ("daemon_poll_interval", "1000"),
    ("daemon_poll_interval", 1.5), ("daemon_poll_interval", 2**40), ("default_program", 5),
    ("branch_prefix", ["a"]),
]


@pytest.mark.parametrize(("field", "value"), BAD_CONFIG, ids=[f"{f}={v!r}" for f, v in BAD_CONFIG])
def test_every_config_field_is_checked(tmp_path: Path, field: str, value: Any) -> None:
    home = tmp_path / "home"
    home.mkdir()
    text = json.dumps({"default_program": "claude", "auto_yes": False, field: value})
    (home / "config.json").write_text(text)
    with pytest.raises(StateFileError) as caught:
        open_squad(home)
    assert str(home / "config.json") in str(caught.value) and field in str(caught.value)
    assert (home / "config.json").read_text() == text


def test_config_defaults_fill_missing_keys_and_profiles_resolve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps(
        {"default_program": "aider", "auto_yes": True,
         "profiles": [{"name": "aider", "program": "aider --model x"}]}))
    squad = open_squad(home)
    assert squad.config["auto_yes"] is True and squad.config["daemon_poll_interval"] == 1000
    assert squad.program == "aider --model x"


@pytest.mark.parametrize("argv", [["ls"], ["ls", "--json"], ["kill", "--all"]])
def test_cli_exits_2_without_traceback_on_a_malformed_file(tmp_path: Path, argv: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    path = write_state(home, [nested("status", -5)])
    assert main([*argv, "--home", str(home), "--socket", "squadnb-storage-unused"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err and "instances[0].status" in err


def test_home_is_0700_and_every_file_0600_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        home = tmp_path / "deep" / "home"
        squad = open_squad(home)
        squad._submit("x", entry("x"), True, False)
        squad._submit("y", {**entry("y"), "status": 1, "prompt": "hi"}, False, False)
        squad._store.drain()
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("state.json", "pending.json", "config.json", ".squadnb.lock"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in home.iterdir()) == [".squadnb.lock", "config.json", "pending.json",
                                                      "state.json"]  # no temp file left


def test_a_rewrite_keeps_the_files_mode(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_state(home, [entry("a")])
    path.chmod(0o640)
    squad = open_squad(home)
    squad["a"].auto_yes = True
    squad.save()
    assert json.loads(path.read_text())["instances"][0]["auto_yes"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlinked_state_file_is_written_through(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "dotfiles"
    target = write_state(elsewhere, [entry("a")])
    home.mkdir()
    (home / "state.json").symlink_to(target)
    squad = open_squad(home)
    squad["a"].auto_yes = True
    squad.save()
    assert (home / "state.json").is_symlink() and os.readlink(home / "state.json") == str(target)
    assert json.loads(target.read_text())["instances"][0]["auto_yes"] is True
    assert sorted(p.name for p in elsewhere.iterdir()) == ["state.json"]


def test_a_symlinked_lock_file_is_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (home / ".squadnb.lock").symlink_to(victim)
    with pytest.raises(StateFileError, match=r"\.squadnb\.lock is a symbolic link"):
        open_squad(home)
    assert victim.read_text() == "keep"


def test_claude_squad_nanosecond_times_round_trip_byte_identical(tmp_path: Path) -> None:
    home = tmp_path / "cs"
    path = write_state(home, [entry("a"), entry("b", status=3)])
    before = path.read_text()
    squad = Squad.claude_squad(home=home, repo=home, tmux_socket="squadnb-storage-unused")
    assert squad["a"].created_at == parse_time(NS_TIME)
    squad.save()
    assert path.read_text() == before  # nothing changed: nothing written
    squad["b"].auto_yes = True
    squad.save()
    after = json.loads(path.read_text())["instances"]
    assert [e["created_at"] for e in after] == [NS_TIME, NS_TIME]
    assert [e["updated_at"] for e in after] == [NS_TIME, NS_TIME]
    assert after[1]["auto_yes"] is True and after[0] == json.loads(before)["instances"][0]


def test_unknown_keys_of_entries_and_file_are_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_state(home, [{**entry("a"), "from_newer_cs": {"x": 1}}], extra_top=[1, 2])
    squad = open_squad(home)
    squad["a"].auto_yes = True
    squad.save()
    saved = json.loads(path.read_text())
    assert saved["extra_top"] == [1, 2] and saved["instances"][0]["from_newer_cs"] == {"x": 1}


# ------------------------------------------------------------------ merging
def test_merge_writes_only_what_the_caller_changed() -> None:
    base = entry()
    disk = {**entry(), "auto_yes": True, "status": 3, "updated_at": "2025-01-03T00:00:00Z"}
    mine = {**entry(), "program": "aider"}
    merged = merge_entry(disk, mine, base, observed=False)
    assert merged == {**disk, "program": "aider"}


def test_an_observation_never_overwrites_a_newer_status() -> None:
    base = entry(status=0)
    paused = {**base, "status": 3, "updated_at": "2025-01-03T00:00:00Z"}
    seen_dead = {**base, "status": 1, "updated_at": "2025-01-04T00:00:00Z",
                 "diff_stats": {**base["diff_stats"], "added": 9}}
    merged = merge_entry(paused, seen_dead, base, observed=True)
    assert merged["status"] == 3 and merged["updated_at"] == paused["updated_at"]
    assert merged["diff_stats"]["added"] == 9  # nobody else changed the counts
    assert merge_entry(paused, seen_dead, base, observed=False)["status"] == 1  # a real transition wins
    assert merge_entry(None, seen_dead, base, observed=True) is None  # killed elsewhere: not re-made
    assert merge_entry(base, seen_dead, base, observed=True)["status"] == 1  # nobody wrote: it lands


@settings(max_examples=25, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["status", "program", "auto_yes"]),
                                st.one_of(st.integers(0, 3), st.text(max_size=5), st.booleans()),
                                max_size=3), min_size=1, max_size=4))
def test_render_matches_json_dump(changes: list[dict[str, Any]]) -> None:
    entries = [{**entry(f"t{i} \u00e9\n\"q\""), **change} for i, change in enumerate(changes)]
    head = {"help_screens_seen": 1, "instances": None, "after": {"a": [1, {"b": None}]}}
    doc = _Doc(None, head, entries, [None] * len(entries))
    expected = {**head, "instances": entries}
    assert doc.render() == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    assert _Doc(None, {"instances": None}, [], []).render() == '{\n  "instances": []\n}\n'


def test_diff_text_is_capped_and_counts_kept() -> None:
    big = "".join(f"+line {i}\n" for i in range(5000))
    data = InstanceData(title="x", diff_stats=InstanceData.__dataclass_fields__["diff_stats"]
                        .default_factory())  # type: ignore[misc]
    data.diff_stats.added, data.diff_stats.content = 5000, big
    written = data.to_json()["diff_stats"]
    assert written["added"] == 5000
    assert len(written["content"]) < DIFF_TEXT_LIMIT + 100 and written["content"].startswith("+line 0\n")
    assert "diff cut by squadnb" in written["content"]
    assert data.diff_stats.content == big  # only the file is capped


def test_changes_queued_during_a_write_share_the_next_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store(home)
    store.submit(Change("first", entry("first"), None, True, False)).result()
    writes = store.writes
    with store.locked():  # another process holds the home: everything queues meanwhile
        futures = [store.submit(Change(f"t{i}", entry(f"t{i}"), None, True, False)) for i in range(50)]
        started = threading.Event()
        threading.Thread(target=lambda: (started.set(), futures[-1].result())).start()
        started.wait()
        assert not any(f.done() for f in futures)
    for future in futures:
        assert future.result(timeout=30).started
    assert store.writes - writes <= 2  # one write for the change taken first, one for the rest
    titles = [e["title"] for e in json.loads((home / "state.json").read_text())["instances"]]
    assert titles == ["first"] + [f"t{i}" for i in range(50)]


def test_a_read_after_another_process_wrote_sees_its_entries(tmp_path: Path) -> None:
    home = tmp_path / "home"
    one, two = Store(home), Store(home)
    one.submit(Change("a", entry("a"), None, True, False)).result()
    assert [s.entry["title"] for s in two.load()] == ["a"]
    two.submit(Change("b", entry("b"), None, True, False)).result()
    one.submit(Change("a", {**entry("a"), "auto_yes": True}, entry("a"), True, False)).result()
    on_disk = json.loads((home / "state.json").read_text())["instances"]
    assert [e["title"] for e in on_disk] == ["a", "b"] and on_disk[0]["auto_yes"] is True
    assert copy.deepcopy(on_disk) == [s.entry for s in Store(home).load()]


def test_drain_waits_for_the_batch_the_writer_is_writing(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """drain() looked only at the queue: a batch the writer had already taken off it was not waited
    for, so the state file could still be missing when drain() returned."""
    squad = open_squad(tmp_path / "home")
    store = squad._store
    taken, release = threading.Event(), threading.Event()
    apply = store._apply

    def held(batch: list) -> list:
        taken.set()
        release.wait(30)
        return apply(batch)

    monkeypatch.setattr(store, "_apply", held)
    squad._submit("x", entry("x"), True, False)
    assert taken.wait(30)
    drained = threading.Event()
    waiter = threading.Thread(target=lambda: (store.drain(), drained.set()))
    waiter.start()
    assert not drained.wait(0.5)  # still writing: drain must not have returned
    release.set()
    waiter.join(30)
    assert drained.is_set() and "x" in (tmp_path / "home" / "state.json").read_text()
