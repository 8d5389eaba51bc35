"""Personal data in free text: one redaction for every place that publishes or forwards what
residents wrote (the public results topic, webhooks and e-mails to subscribers).

Pure functions, no infrastructure.
"""

from __future__ import annotations

import re

# Any word that could hold an e-mail address (an @ with a dot after it): in free text it never
# reaches the public topic, nor a subscriber without the personal-data scope.
ADDRESS = re.compile(r"\S*@\S*\.\S*")
REDACTED = "[…]"


def redact(text: str | None, names: tuple[str, ...] = ()) -> str | None:
    """Free text as it may be published: no e-mail address, and none of `names` (a resident
    proposer's name; names shorter than three characters are left alone, they would match words)."""
    if text is None:
        return None
    text = ADDRESS.sub(REDACTED, text)
    for name in names:
        if name and len(name.strip()) >= 3:
            text = re.sub(re.escape(name.strip()), REDACTED, text, flags=re.IGNORECASE)
    return text
