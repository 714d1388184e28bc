"""The reader web app: Streamlit pages and components, plus the few HTTP routes Streamlit cannot serve itself."""
