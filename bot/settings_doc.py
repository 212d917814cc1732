"""Every setting's name, default and description (bot.settings reads and checks them; README.md
documents each one: scripts/readme_settings.py writes its table from this, a test checks it)."""
from __future__ import annotations

# name -> (default, description). README.md documents each one (a test checks that).
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "SETTINGS_FILE": (".env", "Optional file of KEY=value lines read before the environment (the environment wins)."),
    "GATEWAY_HOST": ("127.0.0.1", "Address the gateway listens on (use 0.0.0.0 behind a load balancer)."),
    "GATEWAY_PORT": ("8080", "Port of the gateway, the only public service."),
    "DATABASE_URL": ("sqlite+aiosqlite:///var/gateway.db",
                     "Gateway database (SQLAlchemy URL): SQLite by default, postgresql+asyncpg://... to scale out."),
    "RASA_URL": ("http://127.0.0.1:5005", "Where the gateway reaches the Rasa server; several comma-separated URLs: "
                                          "each customer always goes to the same one (by a hash of its id), and to "
                                          "the next when that one cannot be reached."),
    "RASA_SERVERS": ("auto", "How many Rasa servers `make run` starts (1-8; auto: 2 on a machine with two or more cores, "
                             "else 1), on RASA_PORT and the ports after it; the gateway then reaches all of them "
                             "(RASA_URL is set to their URLs). Each serves its own customers, so no lock store is needed. "
                             "Each takes about 670 MB of memory (measured with the trained model)."),
    "RASA_TIMEOUT_SECONDS": ("10", "Timeout of one call to Rasa."),
    "RASA_RETRIES": ("2", "Retries of a call to Rasa that could not connect (with backoff)."),
    "RASA_HOST": ("127.0.0.1", "Address `make run` binds the Rasa server to (keep it private)."),
    "RASA_PORT": ("5005", "Port `make run` starts the Rasa server on."),
    "RASA_TRACKER_STORE_URL": ("sqlite:///var/rasa_tracker.db",
                               "Rasa tracker store: sqlite:///path or postgresql://user@host:port/db."),
    "RASA_LOCK_STORE_URL": ("", "Rasa lock store: empty for in-memory (one Rasa), redis://host:port/db for several."),
    "ACTION_SERVER_URL": ("http://127.0.0.1:5055", "Where Rasa and the gateway reach the action server."),
    "ACTION_SERVER_HOST": ("127.0.0.1", "Address `make run` binds the action server to."),
    "ACTION_SERVER_PORT": ("5055", "Port `make run` starts the action server on."),
    "BOT_LANGUAGES": ("en,de,tr,ja", "Languages the assistant detects and answers in (comma-separated)."),
    "MAX_MESSAGE_CHARS": ("4000", "Longest customer message accepted; longer ones get HTTP 413."),
    "LOG_LEVEL": ("INFO", "Log level of every process."),
    "VAR_DIR": ("var", "Folder for run-time state of `make run`: logs, generated Rasa endpoints, default databases."),
    "PUBLIC_URL": ("", "The gateway's public base URL (used in the widget snippet and links); empty: derived from the request."),
    "WIDGET_IDENTITY_SECRET": ("", "Secret for the widget's identity verification: a site passes user_id with "
                                   "user_hash = HMAC-SHA256(secret, user_id) in hex. Empty: signed identities are refused."),
    "WIDGET_ALLOWED_ORIGINS": ("*", "Comma-separated origins allowed to open the widget's WebSocket ('*' = any)."),
    "WHATSAPP_VERIFY_TOKEN": ("", "WhatsApp webhook verification token (the channel is off unless all four "
                                  "WHATSAPP_VERIFY_TOKEN, WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID are set)."),
    "WHATSAPP_APP_SECRET": ("", "Meta app secret: verifies X-Hub-Signature-256 on every webhook."),
    "WHATSAPP_ACCESS_TOKEN": ("", "Bearer token for the WhatsApp Cloud API."),
    "WHATSAPP_PHONE_NUMBER_ID": ("", "The business phone number id messages are sent from."),
    "WHATSAPP_API_BASE_URL": ("https://graph.facebook.com", "Base URL of the Graph API (a simulator's URL in tests)."),
    "WHATSAPP_API_VERSION": ("v23.0", "Graph API version used in send calls."),
    "WHATSAPP_WEBHOOK_MAX_BYTES": ("8388608", "Largest WhatsApp webhook body accepted (bytes; larger: 413). The webhook's own "
                                              "limit, above the gateway's 256 KiB: Meta batches up to 1000 updates "
                                              "in one POST (its documented maximum payload is 3 MB)."),
    "WHATSAPP_RATE_LIMIT_RETRY_SECONDS": ("1800", "How long a WhatsApp message Meta refuses for a rate limit (131056 pair "
                                                  "rate limit, 130429 throughput, ...) is retried, with Meta's backoff, "
                                                  "before it is marked failed."),
    "BUSINESS_HOURS": ("Mon-Fri 08:00-20:00; Sat 10:00-16:00",
                       "When people answer hand-offs: day ranges and times separated by ';' (e.g. "
                       "'Mon-Fri 08:00-20:00; Sat 10:00-16:00'), or 'always'. Outside them the customer is told "
                       "and the request is queued as a ticket."),
    "BUSINESS_TIMEZONE": ("Europe/Berlin", "Time zone of BUSINESS_HOURS (an IANA name such as Europe/Berlin)."),
    "OUTGOING_WEBHOOK_URL": ("", "URL that receives conversation events (handed off, assigned, resolved, handed back) "
                                 "as signed JSON POSTs; empty: none are sent."),
    "OUTGOING_WEBHOOK_SECRET": ("", "Secret of the outgoing webhook's X-Signature-256 (HMAC-SHA256 of the raw body); "
                                    "required when OUTGOING_WEBHOOK_URL is set."),
    "HANDOFF_FORM_TIMEOUT_SECONDS": ("180", "A customer who was promised a person but leaves the hand-off form's question "
                                            "unanswered this long is queued anyway, with what the form captured "
                                            "(bot.handoff.unfinished); 0: never."),
    "INBOX_SESSION_HOURS": ("12", "How long an agent stays signed in to the inbox without using it (hours)."),
    "KB_ARTICLES_DIR": ("data/knowledge_base", "Folder of the knowledge-base articles (Markdown with front matter): "
                                               "imported into the gateway database once, while it has no articles "
                                               "(then the editors' workspace is the source of truth)."),
    "KB_INDEX_DIR": ("var/index", "Folder of the index snapshots (CURRENT points at the published one)."),
    "KB_ENCODER": ("use-multilingual",
                   "Sentence encoder: use-multilingual (packaged USE-m v3), minilm (packaged all-MiniLM-L6-v2) "
                   "or st:<sentence-transformers model name or path>."),
    "KB_ENCODER_THREADS": ("1", "Threads of the encoder (1 is fastest for one query at a time on small machines)."),
    "KB_DEFAULT_LOCALE": ("en", "Locale answered when an article has no translation in the customer's language."),
    "KB_CALIBRATION_FILE": ("data/eval/sample_validation.jsonl",
                            "Labelled questions (JSONL: text, gold article or group, a list of them, or null "
                            "for a question the help centre cannot answer; lang) the confidence model and the "
                            "answer/clarify/hand-off thresholds are calibrated on. Used when at least 30 of them "
                            "are about the knowledge base's articles; otherwise, or with 'none', the articles' "
                            "own 'also asked as' questions are (README 'How sure it is')."),
    "KB_MAX_HANDOFF_RATE": ("0.10", "The answer/clarify/hand-off thresholds hand off at most this share of the "
                                    "answerable calibration questions (0 to 1); within it they weigh wrong answers "
                                    "against unanswerable questions answered."),
    "KB_SNAPSHOT_POLL_SECONDS": ("1.0", "How often the action server looks for a newer published index snapshot."),
    "KB_RETRIEVAL": ("hybrid", "hybrid: both encoders + BM25 + two per-article classifiers, fused (measured best; README "
                               "'Retrieval'); dense: the primary encoder alone through FAISS."),
    "KB_SECONDARY_ENCODER": ("minilm", "Second encoder of hybrid retrieval (weighted for English questions): minilm, "
                                       "minilm-int8 (int8-quantised: 5.6 vs 10.6 ms per query, banking77 10-shot top-1 "
                                       ".854 vs .862, CLINC in-scope accuracy .858 vs .909) or st:<model name or path>."),
    "KB_HYBRID_MAX_ENTRIES": ("50000", "Above this many index entries the knowledge base uses dense retrieval "
                                       "(FAISS, approximate) instead of hybrid scoring of every entry."),
    "KB_CLASSIFIER_MAX_ARTICLES": ("500", "The per-article classifiers are trained only up to this many articles "
                                           "(translation groups): retraining it on every publish costs more above that (bench/kb_search.py)."),
    # the editors' workspace (bot/editor)
    "EDITOR_REQUIRE_APPROVAL": ("true", "Publishing an article needs an approval of its latest version by a second "
                                        "editor (true/false). Admins may publish without one only explicitly "
                                        "(force), and that is audited."),
    "INTERNAL_TOKEN": ("", "Shared secret of the gateway's calls to the action server's internal /kb routes "
                           "(publishing); empty: generated once into VAR_DIR/internal_token."),
    "RATE_LIMIT_SENDER_PER_MINUTE": ("30", "Messages one REST sender id may send per minute; more get HTTP 429 with "
                                           "Retry-After (the widget has its own per-socket limit). 0: no limit."),
    "RATE_LIMIT_WHATSAPP_PER_MINUTE": ("20", "Messages one WhatsApp number may send per minute before the bot stops "
                                             "answering it for the rest of the minute (the messages are stored; the "
                                             "customer is told once, in its language). 0: no limit."),
    "RATE_LIMIT_IP_PER_MINUTE": ("0", "Requests to the REST endpoints one IP address may make per minute; 0: no "
                                      "limit (the default: behind a load balancer every customer shares its address)."),
    "RETENTION_DAYS": ("0", "Delete conversations (and their Rasa tracker events) whose last message is older than this "
                            "many days and that no person is working on; checked hourly. 0: keep forever."),
    "SURVEY": ("csat", "Satisfaction survey after an agent resolves a conversation: csat (1-5, then an optional "
                       "comment), csat,nps (NPS 0-10 in between) or off."),
    "SURVEY_HOURS": ("24", "A survey question waits this many hours for its answer; later messages go to the bot."),
    "SENTIMENT": ("on", "Tag every customer message with its sentiment and severity (on/off), in the background "
                        "through the action server (knowledge_base/sentiment.py)."),
    "RETURNING_DAYS": ("30", "A customer whose previous conversation ended less than this many days ago is greeted "
                             "with its topic (\"Last time you asked about ... Is this about that?\"); 0: never."),
    "EVENT_BROKER_URL": ("", "amqp://user:password@host:5672/ of a RabbitMQ the event stream is published to (and "
                             "Rasa's own tracker events); empty: the stream is only the event_stream table "
                             "(GET /api/admin/events)."),
    "EVENT_BROKER_QUEUE": ("support_events", "The durable queue the gateway publishes the event stream to."),
    "RASA_EVENT_QUEUE": ("rasa_events", "The queue Rasa's pika event broker publishes its tracker events to "
                                        "(EVENT_BROKER_URL set)."),
    "REDIS_PREFIX": ("selfservice", "Prefix of this deployment's Redis channel (several deployments may share one Redis)."),
    "REDIS_URL": ("", "redis://host:port/db shared by several gateway replicas: rate limits hold across them and "
                      "the inbox's and the widget's real-time events reach every replica (bot/fanout.py); "
                      "empty: in-process (one gateway)."),
}
