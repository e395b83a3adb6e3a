"""The SendGrid stand-in's mailbox pages: read what the engine sent, as Mailpit or MailHog let
developers do. ``GET /_standin/mailbox`` lists the accepted messages, newest first;
``GET /_standin/mailbox/<X-Message-Id>`` shows one: its headers, its HTML (in a sandboxed
iframe: the email's scripts never run, its links open in a new tab), its text, and every link
in it (unsubscribe, Accept/Reject) clickable.

Plain functions from a :class:`~nurture.standins.sendgrid_standin.RecordedMessage` to HTML bytes,
every value escaped; no JavaScript anywhere. The stand-in serves them with the headers in
:data:`PAGE_HEADERS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC
from html import escape, unescape
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from nurture.standins.sendgrid_standin import RecordedMessage

MAILBOX_PATH = "/_standin/mailbox"

PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    # The pages carry the stand-in's token in their address: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # No script at all, here or in an email's srcdoc (which inherits this policy).
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; "
        "frame-src 'self'; frame-ancestors 'none'; form-action 'none'"
    ),
}

# allow-popups(-to-escape-sandbox): a link in the email opens a normal tab (an unsubscribe or
# Accept page with working forms). No allow-scripts, no allow-same-origin, no allow-forms.
IFRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"

_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"')\]]+")

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: .8rem 1.5rem; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 1rem 1.5rem; max-width: 70rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #e2e5ea; }
th { font-size: .8rem; text-transform: uppercase; color: #5b6472; }
td.when { white-space: nowrap; color: #5b6472; }
.tag { font-size: .75rem; background: #e8ecf5; border-radius: 3px; padding: .1rem .35rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { color: #5b6472; } dd { margin: 0; }
iframe { width: 100%; height: 32rem; border: 1px solid #d5d9e0; background: #fff; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #fff; padding: .8rem;
      border: 1px solid #d5d9e0; }
ul.links a { word-break: break-all; }
.empty { color: #5b6472; }
"""


def _page(title: str, body: str, home: str) -> bytes:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><header><a href="{escape(home)}">Mailbox</a> '
        "&middot; SendGrid stand-in: what the engine sent</header>"
        f"<main>{body}</main></body></html>\n"
    ).encode()


def _with_token(path: str, token: str | None) -> str:
    return f"{path}?token={quote(token, safe='')}" if token else path


def message_path(message_id: str, token: str | None = None) -> str:
    return _with_token(f"{MAILBOX_PATH}/{quote(message_id, safe='')}", token)


def mailbox_path(token: str | None = None) -> str:
    return _with_token(MAILBOX_PATH, token)


def _category(message: RecordedMessage) -> str:
    return message.custom_args.get("category") or ", ".join(message.categories)


def _tag(text: str) -> str:
    return f'<span class="tag">{escape(text)}</span>' if text else ""


def mailbox_page(messages: Sequence[RecordedMessage], token: str | None) -> bytes:
    """Every accepted message, newest first, each linking to its page."""
    rows = []
    for message in reversed(messages):
        when = message.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            f'<tr><td class="when">{escape(when)}</td>'
            f"<td>{escape(', '.join(message.to))}</td>"
            f'<td><a href="{escape(message_path(message.message_id, token))}">'
            f"{escape(message.subject or '(no subject)')}</a></td>"
            f"<td>{_tag(_category(message))}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>Received (UTC)</th><th>To</th><th>Subject</th><th>Kind</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="empty">No email sent yet.</p>'
    )
    return _page("Mailbox", f"<h1>{len(messages)} message(s)</h1>{table}", mailbox_path(token))


def links_in(message: RecordedMessage) -> list[str]:
    """The http(s) links of the message, HTML ones first, each once."""
    found: list[str] = []
    html = message.contents.get("text/html", "")
    for match in _HREF.finditer(html):
        found.append(unescape(match.group(1) or match.group(2) or ""))
    found += _URL_IN_TEXT.findall(message.contents.get("text/plain", ""))
    links = [link for link in found if link.startswith(("http://", "https://"))]
    return list(dict.fromkeys(links))


def _srcdoc(html: str) -> str:
    """The email's HTML for the iframe: links open in a new tab, no Referer."""
    head = '<base target="_blank"><meta name="referrer" content="no-referrer">'
    return head + html


def message_page(message: RecordedMessage, token: str | None) -> bytes:
    """One message: headers, HTML in a sandboxed iframe, text, and its links."""
    when = message.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = [
        ("From", message.from_email),
        ("To", ", ".join(message.to)),
        ("Subject", message.subject),
        ("Received", when),
        ("Kind", _category(message)),
        ("Message id", message.message_id),
    ]
    parts = [
        f"<h1>{escape(message.subject or '(no subject)')}</h1><dl>",
        *(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts),
        "</dl>",
    ]
    html = message.contents.get("text/html")
    if html is not None:
        parts.append(
            "<h2>HTML</h2>"
            f'<iframe title="HTML of this email" sandbox="{IFRAME_SANDBOX}" '
            f'referrerpolicy="no-referrer" srcdoc="{escape(_srcdoc(html), quote=True)}">'
            "</iframe>"
        )
    text = message.contents.get("text/plain")
    if text is not None:
        parts.append(f"<h2>Text</h2><pre>{escape(text)}</pre>")
    links = links_in(message)
    if links:
        items = "".join(
            f'<li><a href="{escape(link)}" target="_blank" rel="noopener noreferrer">'
            f"{escape(link)}</a></li>"
            for link in links
        )
        parts.append(f'<h2>Links</h2><ul class="links">{items}</ul>')
    return _page(message.subject or "Message", "".join(parts), mailbox_path(token))


def not_found_page(token: str | None) -> bytes:
    return _page("No such message", "<p>No message has this id.</p>", mailbox_path(token))
