"""Meta's Graph API rules the simulator plays (tests/whatsapp_sim/simulator.py): the limits and the
validation of message content, error bodies in Meta's shape, and the failures tests can inject."""
from __future__ import annotations

import base64
import secrets

# Meta's limits
MAX_TEXT_BODY = 4096
MAX_BUTTON_BODY = 1024  # reply buttons
MAX_LIST_BODY = 4096  # lists (Meta's interactive list reference)
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_LIST_ROWS = 10
MAX_LIST_SECTIONS = 10
MAX_ROW_TITLE = 24
MAX_ROW_ID = 200
MAX_ROW_DESCRIPTION = 72
MAX_SECTION_TITLE = 24
MAX_LIST_BUTTON = 20
MAX_HEADER_FOOTER = 60
MAX_CALLBACK_DATA = 512


def new_wamid() -> str:
    return "wamid.HBgM" + base64.b64encode(secrets.token_bytes(27)).decode()


def fbtrace_id() -> str:
    return base64.b64encode(secrets.token_bytes(8)).decode().rstrip("=")


class GraphError(Exception):
    def __init__(self, http_status: int, code: int, message: str, *, subcode: int | None = None,
                 details: str | None = None, title: str | None = None):
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message
        self.subcode, self.details, self.title = subcode, details, title

    def body(self) -> dict:
        err: dict = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.details:
            err["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        err["fbtrace_id"] = fbtrace_id()
        return {"error": err}


def invalid(details: str) -> GraphError:
    return GraphError(400, 100, "(#100) Invalid parameter", details=details)


# The failures tests can ask for (``fail_next``): kind -> (HTTP status, code, message, details).
FAILURES = {
    "500": (500, 131000, "Something went wrong", "Message failed to send because of an unknown error."),
    "503": (503, 133004, "Server temporarily unavailable", "The server is temporarily unavailable."),
    "429": (429, 130429, "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached."),
    "pair_rate_limit": (400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                        "Too many messages sent from the sender phone number to the same recipient phone number "
                        "in a short period of time."),
    "400": (400, 100, "(#100) Invalid parameter", "Simulated invalid request."),
    "401": (401, 190, "Invalid OAuth access token - Cannot parse access token", None),
}



def validate_content(kind: str, body: dict) -> None:
    """Meta's validation of a message's content (the subset this project sends, and then some)."""
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"].strip():
            raise GraphError(400, 100, "(#100) The parameter text['body'] is required.")
        if len(text["body"]) > MAX_TEXT_BODY:
            raise invalid(f"Param text['body'] must be at most {MAX_TEXT_BODY} characters long.")
    elif kind == "interactive":
        _validate_interactive(body.get("interactive"))
    elif kind == "template":
        tpl = body.get("template")
        if not isinstance(tpl, dict) or not tpl.get("name") or not isinstance(tpl.get("language"), dict):
            raise GraphError(400, 100, "(#100) The parameter template['name'] is required.")
    elif kind in ("image", "audio", "video", "document", "sticker"):
        media = body.get(kind)
        if not isinstance(media, dict) or not (media.get("id") or media.get("link")):
            raise invalid(f"Param {kind} must have an id or a link.")
    elif kind == "reaction":
        if not isinstance(body.get("reaction"), dict):
            raise invalid("Param reaction is required.")
    else:
        raise invalid(f"Param type '{kind}' is not a valid message type.")


def _len_check(value, limit: int, what: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{what} is required and cannot be empty.")
    if len(value) > limit:
        raise invalid(f"{what} length invalid. Min length: 1, Max length: {limit}")


def _validate_interactive(inter) -> None:
    if not isinstance(inter, dict):
        raise GraphError(400, 100, "(#100) The parameter interactive is required.")
    itype = inter.get("type")
    body = inter.get("body")
    if itype in ("button", "list"):
        if not isinstance(body, dict):
            raise GraphError(400, 100, "(#100) The parameter interactive['body'] is required.")
        _len_check(body.get("text"), MAX_LIST_BODY if itype == "list" else MAX_BUTTON_BODY, "Body text")
    for part in ("header", "footer"):
        if part in inter:
            p = inter[part]
            if not isinstance(p, dict):
                raise invalid(f"interactive['{part}'] must be an object.")
            if part == "footer" or p.get("type") == "text":
                _len_check(p.get("text"), MAX_HEADER_FOOTER, f"{part.capitalize()} text")
    action = inter.get("action")
    if not isinstance(action, dict):
        raise GraphError(400, 100, "(#100) The parameter interactive['action'] is required.")
    if itype == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not buttons:
            raise GraphError(400, 100, "(#100) The parameter interactive['action']['buttons'] is required.")
        if len(buttons) > MAX_BUTTONS:
            raise invalid(f"Buttons count invalid. Min count: 1, Max count: {MAX_BUTTONS}")
        ids, titles = set(), set()
        for b in buttons:
            if not isinstance(b, dict) or b.get("type") != "reply" or not isinstance(b.get("reply"), dict):
                raise invalid("Each button must be {\"type\": \"reply\", \"reply\": {\"id\", \"title\"}}.")
            _len_check(b["reply"].get("title"), MAX_BUTTON_TITLE, "Button title")
            _len_check(b["reply"].get("id"), MAX_BUTTON_ID, "Button id")
            if b["reply"]["id"] in ids or b["reply"]["title"] in titles:
                raise invalid("Button ids and titles must be unique within the message.")
            ids.add(b["reply"]["id"])
            titles.add(b["reply"]["title"])
    elif itype == "list":
        _len_check(action.get("button"), MAX_LIST_BUTTON, "Button label")
        sections = action.get("sections")
        if not isinstance(sections, list) or not sections:
            raise GraphError(400, 100, "(#100) The parameter interactive['action']['sections'] is required.")
        if len(sections) > MAX_LIST_SECTIONS:
            raise invalid(f"Sections count invalid. Min count: 1, Max count: {MAX_LIST_SECTIONS}")
        rows_total, ids = 0, set()
        for section in sections:
            if not isinstance(section, dict) or not isinstance(section.get("rows"), list) or not section["rows"]:
                raise invalid("Each section needs at least one row.")
            _len_check(section.get("title"), MAX_SECTION_TITLE, "Section title")  # required (Meta's list reference)
            for row in section["rows"]:
                if not isinstance(row, dict):
                    raise invalid("Each row must be an object.")
                _len_check(row.get("id"), MAX_ROW_ID, "Row id")
                _len_check(row.get("title"), MAX_ROW_TITLE, "Row title")
                _len_check(row.get("description"), MAX_ROW_DESCRIPTION, "Row description", required=False)
                if row["id"] in ids:
                    raise invalid("Row ids must be unique within the message.")
                ids.add(row["id"])
                rows_total += 1
        if rows_total > MAX_LIST_ROWS:
            raise invalid(f"Total row count exceed max allowed count: {MAX_LIST_ROWS}")
    elif itype in ("cta_url", "location_request_message", "flow", "product", "product_list", "catalog_message"):
        pass
    else:
        raise invalid(f"Param interactive['type'] '{itype}' is not valid.")

