"""The page a browser without a valid session sees: how to sign in."""

import streamlit as st


def render() -> None:
    st.title("Reader study")
    st.info(
        "You are not signed in. Open the personal sign-in link your study coordinator sent you. "
        "Each link works once; after that this browser stays signed in."
    )
    st.link_button("Coordinator sign-in", "/console/signin")
