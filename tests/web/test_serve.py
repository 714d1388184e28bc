"""`serve()` starts the app with the options of streamlit_config.toml and the given database."""

from __future__ import annotations

from pathlib import Path

from study_app import serve as serve_module
from study_app.web.database import DB_URL_ENV


def test_config_file_has_the_required_options():
    options = serve_module.streamlit_options()
    assert options["server.headless"] is True
    assert options["server.fileWatcherType"] == "none"
    assert options["server.enableXsrfProtection"] is True
    assert options["browser.gatherUsageStats"] is False
    assert options["client.showErrorDetails"] == "none"
    # A full gc.collect(2) after every rerun was half the server's CPU under load (P7, docs/benchmarks.md).
    assert options["runner.postScriptGC"] is False


def test_the_options_read_are_the_top_level_config_and_ship_inside_the_package():
    """serve() reads the package's copy (what an installed wheel has), which is the top-level file itself."""
    from pathlib import Path

    import study_app

    top_level = Path(study_app.__file__).resolve().parents[1] / "streamlit_config.toml"
    assert serve_module.CONFIG_FILE.parent == Path(study_app.__file__).parent
    assert serve_module.CONFIG_FILE.read_bytes() == top_level.read_bytes()


def test_every_option_is_one_streamlit_knows():
    from streamlit import config

    unknown = [name for name in serve_module.streamlit_options() if name not in config._config_options_template]
    assert not unknown


def test_missing_config_file_means_streamlit_defaults(tmp_path):
    assert serve_module.streamlit_options(tmp_path / "absent.toml") == {}


def test_serve_opens_the_database_then_runs_the_app_with_host_and_port(tmp_path, monkeypatch):
    ran = {}

    class FakeApp:
        def run(self, *, config):
            ran.update(config)

    import study_app.web.database as web_database
    import study_app.web.server as web_server

    monkeypatch.setattr(web_server, "build_app", lambda guard=None: FakeApp())
    # serve() sets these for the app; recorded here so monkeypatch puts them back afterwards.
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    monkeypatch.delenv("READERSTUDY_IMAGE_CACHE", raising=False)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    url = f"sqlite:///{tmp_path / 'served.sqlite'}"
    try:
        serve_module.serve(url, host="127.0.0.2", port=8999, image_cache=tmp_path / "cache")
        assert (tmp_path / "served.sqlite").is_file(), "the database is opened and migrated before serving"
    finally:
        web_database.close_shared_databases()
    assert ran["server.address"] == "127.0.0.2" and ran["server.port"] == 8999
    assert ran["server.headless"] is True


def test_rerun_timer_logs_each_run_even_when_the_script_stops_early(tmp_path, monkeypatch):
    """P7 reads the server's interaction time from this log; st.stop() and st.rerun() end a run by exception."""
    import time

    import pytest

    from study_app.web.timing import RERUN_LOG_ENV, read_rerun_log, rerun_timer

    log = tmp_path / "reruns.log"
    with rerun_timer():  # unset: nothing written
        pass
    assert not log.exists()
    monkeypatch.setenv(RERUN_LOG_ENV, str(log))
    before = time.time()
    with rerun_timer():
        time.sleep(0.05)
    with pytest.raises(RuntimeError), rerun_timer():
        raise RuntimeError("st.stop()")
    durations = read_rerun_log(log, since=before)
    assert len(durations) == 2 and durations[0] >= 0.05 and durations[1] < 0.05
    assert read_rerun_log(log, since=time.time() + 1) == []


def test_the_served_app_parses_http_with_httptools_on_uvloops_event_loop(tmp_path):
    """uvicorn takes both only when they are installed (pyproject lists them: P8's CPU per request and rerun);
    a lost dependency would fall back to h11 and asyncio's loop silently, so the running server is looked at."""
    import sys

    import httpx
    import pytest

    from tests.browser_support import start_app_server, stop_process

    if not sys.platform.startswith("linux"):
        pytest.skip("reads the server's memory map from /proc")
    server, port = start_app_server(f"sqlite:///{tmp_path / 'study.sqlite'}", tmp_path / "server.log", cwd=tmp_path)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=30).status_code == 200
        loaded = (Path("/proc") / str(server.pid) / "maps").read_text()
    finally:
        stop_process(server)
    assert "/uvloop/" in loaded and "/httptools/" in loaded
