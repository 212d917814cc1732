"""The staff's accounts and sign-in, shared by the agent inbox, the editors' workspace and the dashboard:
accounts and `python -m bot agents` (accounts), sessions and CSRF (auth), the acting agent (actor), and
the staff pages' serving (pages; their shared script is bot/web/staff/staff.js)."""
