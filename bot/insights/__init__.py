"""What the conversations tell: satisfaction surveys, returning customers, sentiment, churn risk, metrics
and the dashboard, linked identities, and a contact's data (export, deletion, retention)."""
