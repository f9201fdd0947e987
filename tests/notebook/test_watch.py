"""The live status view, against real demo agents."""

from __future__ import annotations

import subprocess

import pytest
from helpers import wait_for

from squadnb.notebook.watch import StatusView, watch


def test_watch_refreshes_until_stopped(squad, started, tmux_socket):
    started(2)
    view = watch(squad, interval=0.1)
    assert isinstance(view, StatusView) and view.running
    wait_for(lambda: view.refreshes >= 2, 30, "two refreshes")
    assert "nb-0" in view.widget.value and "nb-1" in view.widget.value
    # A session killed behind squadnb's back shows up as dead at a later refresh.
    subprocess.run(["tmux", "-L", tmux_socket, "kill-session", "-t", f"={squad['nb-1'].session_name}"],
                   check=True)
    wait_for(lambda: ">dead<" in view.widget.value, 30, "the view to show the dead instance")
    view.stop()
    wait_for(lambda: not view.running, 10, "the refresh task to stop")
    count = view.refreshes
    assert "stopped" in repr(view)
    view.stop()
    assert view.refreshes == count


def test_watch_stops_when_its_last_view_closes(squad, started):
    started(1)
    view = watch(squad, interval=0.1)
    view.widget._view_count = 1
    view.widget._view_count = 0
    wait_for(lambda: not view.running, 10, "the refresh task to stop")


def test_watch_refuses_a_bad_interval(squad):
    with pytest.raises(ValueError, match="interval"):
        watch(squad, interval=0)
