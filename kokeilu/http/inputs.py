"""What the HTTP layer refuses before a service sees a request: bodies that are too large, not
JSON, nested too deep, or carry text no store or topic can hold (NUL, lone surrogates), and
query or path values with such text. Every refusal is an `ApiError` naming the field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from pydantic import BaseModel
from werkzeug.datastructures import MultiDict

from kokeilu.contracts.envelope import MAX_EVENT_BYTES

from .errors import ApiError, PayloadTooLarge, Unprocessable

MAX_BODY_BYTES = 1024 * 1024
# Every body of the API is a few levels deep; anything deeper is hostile (and json.loads recurses).
MAX_JSON_DEPTH = 32
MAX_PATH_VALUE = 200
# What the CloudEvent envelope adds around a request's data (ids, source, type, time ...), generously.
ENVELOPE_ALLOWANCE = 4096

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# What a body must contain to carry NUL or a lone surrogate in any of its texts once parsed: an
# escape (\u0000, \ud800), a NUL byte (which every UTF-16 or UTF-32 body has, and no UTF-8 one
# needs), or a surrogate encoded in UTF-8 (json.loads decodes with surrogatepass). A body
# without any of them is not walked (bad_text), which was a tenth of parsing a submission.
_MAY_HAVE_BAD_TEXT = re.compile(rb"\\u|\x00|\xed[\xa0-\xbf]")


def json_depth(raw: bytes) -> int:
    """How deep the arrays and objects of `raw` nest (brackets inside strings do not count)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH.__getitem__, brackets)), default=0)


def text_problem(value: str) -> str | None:
    match = _BAD_TEXT.search(value)
    if match is None:
        return None
    return "must not contain NUL characters" if match.group() == "\x00" else "must not contain lone surrogates"


def bad_text(value: Any, where: str = "") -> dict[str, str]:
    """Fields (dotted paths, list items by index) whose text, or key, has NUL or a lone surrogate."""
    found: dict[str, str] = {}
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                found[path or "(body)"] = problem
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                problem = text_problem(key)
                if problem:
                    found[(path + "." if path else "") + repr(key)[1:-1]] = "key " + problem
                    continue
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(item))
    return found


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or an ApiError: 413 too large, 400 not JSON or too deep, 422 bad text."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body larger than {MAX_BODY_BYTES} bytes", {"(body)": "too large"})
    # A body that opens no more arrays and objects than the limit nests no deeper: counted
    # without the scan that leaves out brackets inside strings.
    opened = raw.count(b"[") + raw.count(b"{")
    if opened > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(f"request body nests deeper than {MAX_JSON_DEPTH} levels", {"(body)": "nested too deep"})
    try:
        payload = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(f"request body is not JSON: {exc}", {"(body)": "not JSON"}) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise ApiError(f"request body is not JSON this API reads: {exc}", {"(body)": "not readable"}) from None
    if not isinstance(payload, dict):
        raise ApiError("request body must be a JSON object", {"(body)": "not an object"})
    fields = bad_text(payload) if _MAY_HAVE_BAD_TEXT.search(raw) else None
    if fields:
        raise Unprocessable("the request is not valid: " + ", ".join(sorted(fields)), fields)
    return payload


def check_request_text(args: MultiDict[str, str], path_values: Mapping[str, object]) -> None:
    """Query parameters and path segments: no NUL or lone surrogates, path segments bounded."""
    fields: dict[str, str] = {}
    for key, values in args.lists():
        key_problem = text_problem(key)
        problem = key_problem or next(filter(None, map(text_problem, values)), None)
        if problem:
            fields[repr(key)[1:-1] if key_problem else key] = problem
    for key, value in path_values.items():
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is None and len(value) > MAX_PATH_VALUE:
                problem = f"longer than {MAX_PATH_VALUE} characters"
            if problem:
                fields[key] = problem
    if fields:
        raise Unprocessable("the request is not valid: " + ", ".join(sorted(fields)), fields)


def check_event_size(body: BaseModel, limit: int = MAX_EVENT_BYTES) -> None:
    """413 when the event a body would become could not be carried on a topic (MAX_EVENT_BYTES),
    naming the largest fields. The contract bounds keep every body well under the limit; this is
    the guard should a bound ever be raised past it."""
    size = len(body.model_dump_json()) + ENVELOPE_ALLOWANCE
    if size <= limit:
        return
    sizes = {
        name: len(json.dumps(value, default=str, ensure_ascii=False).encode())
        for name, value in body.model_dump(mode="json").items()
    }
    largest = sorted(sizes, key=lambda name: sizes[name], reverse=True)[:3]
    raise PayloadTooLarge(
        f"the event this request would produce is about {size} bytes, more than the {limit} bytes a topic carries",
        {name: f"{sizes[name]} bytes" for name in largest},
    )
