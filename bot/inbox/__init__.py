"""The agent inbox: a web page at /inbox (plain JS and CSS in bot/web/inbox/), its JSON API under
/api/inbox and a WebSocket for real-time updates; agent accounts, sessions and CSRF protection."""
