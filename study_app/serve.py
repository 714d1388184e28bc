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


PUBLIC_ORIGIN_ENV = "READERSTUDY_PUBLIC_ORIGIN"
TRUSTED_PROXIES_ENV = "READERSTUDY_TRUSTED_PROXIES"
# Streamlit's own setting, read from the environment only (it refuses secrets passed in code).
COOKIE_SECRET_ENV = "STREAMLIT_SERVER_COOKIE_SECRET"
MIN_COOKIE_SECRET_CHARS = 32


def parse_trusted_proxies(text: str) -> list[str]:
    """Addresses or networks (``10.0.0.5``, ``10.0.0.0/24``) from a comma- or space-separated setting.

    Raises
    ------
    ValueError
        An entry that is neither, or ``*`` (trusting every client would let anyone choose their address).
    """
    import ipaddress

    found = []
    for item in text.replace(",", " ").split():
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"trusted proxy '{item}' is not an IP address or network (e.g. 10.0.0.5 or "
                             "10.0.0.0/24); '*' is not allowed") from None
        found.append(item)
    return found


def security_settings(host: str, port: int, public_origins: list[str] | str | None = None,
                      trusted_proxies: list[str] | str | None = None):
    """The guard of the served app and the proxies whose X-Forwarded-For/-Proto are believed.

    Parameters
    ----------
    host, port : the bound address.
    public_origins : the address(es) readers type, e.g. ``https://study.example.org``; default
        ``$READERSTUDY_PUBLIC_ORIGIN``, else the bound address itself.
    trusted_proxies : addresses or networks of the reverse proxies; default ``$READERSTUDY_TRUSTED_PROXIES``,
        else none (a client's address is the connection's own).

    Returns
    -------
    (Guard, list of str)

    Raises
    ------
    ValueError
        A malformed origin or proxy, a missing public origin on 0.0.0.0, or a cookie secret too short.
    """
    from study_app.web.guard import Guard, parse_origins

    if public_origins is None or (isinstance(public_origins, (list, tuple)) and not public_origins):
        public_origins = os.environ.get(PUBLIC_ORIGIN_ENV, "")
    if isinstance(public_origins, str):
        public_origins = parse_origins(public_origins)
    else:
        public_origins = parse_origins(" ".join(public_origins))
    if trusted_proxies is None or (isinstance(trusted_proxies, (list, tuple)) and not trusted_proxies):
        trusted_proxies = os.environ.get(TRUSTED_PROXIES_ENV, "")
    proxies = parse_trusted_proxies(trusted_proxies if isinstance(trusted_proxies, str) else " ".join(trusted_proxies))
    secret = os.environ.get(COOKIE_SECRET_ENV)
    if secret is not None and len(secret) < MIN_COOKIE_SECRET_CHARS:
        raise ValueError(f"{COOKIE_SECRET_ENV} must be at least {MIN_COOKIE_SECRET_CHARS} characters "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return Guard.for_serving(host, port, public_origins), proxies


def serve(db_url: str | None = None, *, host: str = "127.0.0.1", port: int = 8501,
          image_cache: str | Path | None = None, public_origins: list[str] | str | None = None,
          trusted_proxies: list[str] | str | None = None, worker: bool = True) -> None:
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
    public_origins : list of str, optional
        The origin(s) readers' browsers use (``https://study.example.org``): the only ones allowed to change
        state or open the websocket. Default ``$READERSTUDY_PUBLIC_ORIGIN``, else the bound address.
    trusted_proxies : list of str, optional
        Reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed (client addresses
        for sign-in throttling, ``https`` for cookies). Default ``$READERSTUDY_TRUSTED_PROXIES``, else none.
    worker : bool, default True
        Also run drafting jobs from the database in a thread of this process (one job runs on one worker, so
        replicas may all have one).

    Examples
    --------
    >>> serve("sqlite:///var/study.db", port=8501)  # doctest: +SKIP
    """
    from study_app.web.database import DB_URL_ENV
    from study_app.services.images import CACHE_DIR_ENV

    guard, proxies = security_settings(host, port, public_origins, trusted_proxies)
    # uvicorn's proxy-header handling reads this; by default it would believe any process on 127.0.0.1.
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(proxies)
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
    options.update({"server.address": host, "server.port": int(port),
                    # Streamlit's own checks agree with the guard's: the same origins, nothing wider.
                    "server.corsAllowedOrigins": sorted(guard.origins)})
    # One cookie secret per database, kept across restarts and shared by replicas, unless the operator sets
    # one (Streamlit takes this option only from its environment variable or a config file). A secret drawn
    # anew by each process left every open tab unable to reconnect after a restart until it was reloaded.
    if not os.environ.get(COOKIE_SECRET_ENV):
        os.environ[COOKIE_SECRET_ENV] = server_key(db, COOKIE_SECRET)
    if worker:
        from study_app.services.drafting_jobs import start_worker_thread

        start_worker_thread(db, log=lambda line: print(line, flush=True))
    build_app(guard).run(config=options)
