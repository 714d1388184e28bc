"""Services: the study's rules and transactions, called alike by the web app, the CLI and the tests."""
