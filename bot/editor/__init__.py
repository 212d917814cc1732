"""The editors' workspace: articles in the database, review workflow, live publishing (see README)."""
