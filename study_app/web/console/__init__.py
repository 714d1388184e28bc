"""The coordinator console: one page per job (studies, readers, drafts, launch, progress, data, interventions)."""

from __future__ import annotations

import streamlit as st

from study_app.web.console import data, drafts, interventions, launch, progress, readers, studies


def console_pages() -> list[st.Page]:
    """The console's pages for a coordinator's navigation; every url path starts with ``console-``.

    Each page refuses anyone but a coordinator itself, so a page list built for the wrong
    person still shows nothing.
    """
    return [
        # The first page is the default one and Streamlit serves it at the root, ignoring its url_path, so the
        # Studies page has a second, hidden entry at /console-studies: that address (in the docs, in bookmarks)
        # opened a "Page not found" dialog.
        st.Page(studies.render, title="Studies", url_path="console", default=True),
        st.Page(studies.render, title="Studies", url_path="console-studies", visibility="hidden"),
        st.Page(readers.render, title="Readers", url_path="console-readers"),
        st.Page(drafts.render, title="Drafts", url_path="console-drafts"),
        st.Page(launch.render, title="Launch", url_path="console-launch"),
        st.Page(progress.render, title="Progress", url_path="console-progress"),
        st.Page(data.render, title="Data", url_path="console-data"),
        st.Page(interventions.render, title="Interventions", url_path="console-interventions"),
    ]
