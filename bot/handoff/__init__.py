"""Human hand-off: the conversation states the router moves through (bot, pending, open, resolved),
the queue and its priority, business hours, the inbox's real-time hub and the outgoing webhook.
The router owns it (bot.router.Router.desk)."""
