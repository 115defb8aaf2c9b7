"""The staff console: server-rendered HTML pages with sessions and CSRF protection."""
