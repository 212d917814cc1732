"""Custom actions for the Rasa assistant, served by rasa-sdk (see actions/server.py).

Actions are thin: the knowledge base does the searching and deciding, the domain holds every
user-visible text in en, de, tr and ja.
"""
