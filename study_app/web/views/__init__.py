"""The app's pages; each is thin and calls study_app services."""
