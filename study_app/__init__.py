"""The reader-study hub: store, designs, allocation, services, web app and CLI."""
