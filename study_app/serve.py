"""Start the reader web app: the Streamlit pages plus the sign-in and viewer routes, on one port."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

# A symlink to the top-level streamlit_config.toml, so an installed wheel (which copies it) has the same options.
CONFIG_FILE = Path(__file__).parent / "streamlit_config.toml"


def streamlit_options(config_file: Path = CONFIG_FILE) -> dict[str, object]:
    """The options of ``streamlit_config.toml`` as Streamlit's dotted names (``server.headless`` ...).

    Parameters
    ----------
    config_file : Path
        The TOML file; a missing file gives no options (Streamlit's defaults).

    Returns
    -------
    dict
        ``{"section.option": value}``.
    """
    if not config_file.is_file():
        return {}
    data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    return {f"{section}.{key}": value for section, options in data.items() for key, value in options.items()}


def serve(db_url: str | None = None, *, host: str = "127.0.0.1", port: int = 8501,
          image_cache: str | Path | None = None) -> None:
    """Serve the reader app until interrupted (blocks).

    Parameters
    ----------
    db_url : str, optional
        SQLAlchemy URL of the study database; None uses the store's default.
    host : str, default "127.0.0.1"
        Address to bind; put a TLS proxy in front for anything but a laptop demo.
    port : int, default 8501
    image_cache : str or Path, optional
        Folder for display copies of the images (kept across restarts); memory only when None.

    Examples
    --------
    >>> serve("sqlite:///var/study.db", port=8501)  # doctest: +SKIP
    """
    from study_app.web.database import DB_URL_ENV
    from study_app.services.images import CACHE_DIR_ENV

    if db_url:
        os.environ[DB_URL_ENV] = db_url
    if image_cache:
        os.environ[CACHE_DIR_ENV] = str(image_cache)
    # Fail before the server starts when the database cannot be opened or migrated.
    from study_app.web.database import shared_database

    db = shared_database()
    from study_app.services.server_keys import COOKIE_SECRET, server_key
    from study_app.web.server import build_app

    options = streamlit_options()
    options.update({"server.address": host, "server.port": int(port)})
    # One cookie secret per database, kept across restarts and shared by replicas, unless the operator sets one.
    # (Streamlit takes this option only from its environment variable or a config file.)
    if not os.environ.get("STREAMLIT_SERVER_COOKIE_SECRET"):
        os.environ["STREAMLIT_SERVER_COOKIE_SECRET"] = server_key(db, COOKIE_SECRET)
    build_app().run(config=options)
