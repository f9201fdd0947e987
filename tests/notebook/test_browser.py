"""The BatchForm in a real browser: notebooks/apps/batch_form.ipynb served by Voila, driven by
Playwright in Debian's chromium, against real demo agents."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tmux_sessions

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
APP = Path(__file__).resolve().parents[2] / "notebooks" / "apps" / "batch_form.ipynb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"voila exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"voila did not listen on port {port} within {timeout} s")


@pytest.fixture
def voila(tmp_path: Path, tmux_socket: str):
    """Serve the BatchForm app; yield (url, tmux socket of its agents); stop voila and its agents."""
    port = free_port()
    app_socket = f"{tmux_socket}-voila"
    env = {**os.environ, "SQUADNB_TMUX_SOCKET": app_socket, "TMPDIR": str(tmp_path)}
    log = (tmp_path / "voila.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", str(APP), "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--ServerApp.ip=127.0.0.1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for_port(port, process, 60)
        yield f"http://127.0.0.1:{port}/", app_socket
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        subprocess.run(["tmux", "-L", app_socket, "kill-server"], capture_output=True)
        stale = Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", app_socket)
        stale.unlink(missing_ok=True)


def test_form_in_chromium_pauses_the_selected_agents(voila, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), "the browser test needs Debian's chromium: apt-get install -y chromium"
    url, app_socket = voila
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            # Voila runs the whole notebook (four agents start) before it sends the page.
            page.goto(url, timeout=180_000)
            select = page.locator(".widget-select-multiple select")
            expect(select).to_be_visible(timeout=120_000)
            select.locator("option", has_text="agent-2").click()
            select.locator("option", has_text="agent-3").click(modifiers=["Control"])
            expect(page.get_by_text("2 selected of 4 shown")).to_be_visible(timeout=30_000)
            page.locator(".widget-dropdown select").nth(1).select_option(label="Pause")
            page.get_by_role("button", name="Run").click()
            table = page.locator(".widget-output table")
            expect(table).to_be_visible(timeout=120_000)
            expect(table.locator("tbody tr")).to_have_count(2)
            expect(table).to_contain_text("agent-2")
            expect(table).to_contain_text("agent-3")
            expect(page.locator(".widget-output")).to_contain_text("Pause: 2 succeeded, 0 failed of 2")
            page.screenshot(path=tmp_path / "batch_form.png", full_page=True)
        finally:
            browser.close()
    # The real state changed: the two paused agents' tmux sessions are gone, the others run.
    assert tmux_sessions(app_socket) == {"squadnb_agent-1", "squadnb_agent-4"}
