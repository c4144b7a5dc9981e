"""JSON text content: encoding and decoding with the errors the peer can cause.

The tutorial encodes with ``json.dumps(obj, ensure_ascii=False)`` and the
declared ``content-encoding``, and decodes with that same codec. Each way a
peer's content can be unusable maps to a :class:`RequestError` code.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from . import _codes as codes
from ._errors import LocalProtocolError, RequestError, excerpt

#: JSON's names for what :func:`json.loads` returns, for error messages a
#: client reads (``null``, not ``NoneType``).
_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def json_type_name(value: Any) -> str:
    """What ``value``, decoded from JSON, was in the request: ``null``,
    ``a number``, ``an array``..."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def bad_value_reason(body: dict[str, Any]) -> str:
    """Why a request's ``value`` is not the string it must be."""
    if "value" not in body:
        return "request has no 'value'"
    return f"'value' must be a string, not {json_type_name(body['value'])}"


def encode_json(obj: Any, encoding: str = "utf-8") -> bytes:
    """Encode ``obj`` as JSON text in ``encoding``, as the tutorial does.

    Strings holding lone surrogates (which a peer can send as ``"\\ud800"``)
    cannot be encoded as UTF-8 text; they are written as JSON escapes instead,
    which is still valid JSON and decodes to the same value.

    Raises:
        LocalProtocolError: ``obj`` is not JSON-serializable, or ``encoding``
            is not a text codec.
    """
    try:
        text = json.dumps(obj, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode as JSON: {exc}", code=codes.UNENCODABLE) from exc
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True).encode(encoding)
    except LookupError as exc:
        raise LocalProtocolError(
            f"unknown encoding {excerpt(encoding)!r}", code=codes.UNKNOWN_ENCODING
        ) from exc


#: Codecs whose decoders take time quadratic in the content: CPython's
#: punycode decoder needs about 8 s of CPU for 1 MiB (0.06 s for 64 KiB), so
#: one request could hold a core for seconds. Refused as unknown encodings.
_QUADRATIC_CODECS = frozenset({"punycode"})

#: Codecs that are not text encodings at all but Python escape syntax, whose
#: decoder warns (DeprecationWarning) on an unknown escape: refused as
#: unknown encodings rather than let a warning filter decide what happens.
_ESCAPE_CODECS = frozenset({"unicode-escape"})


def decode_json(content: bytes, encoding: str) -> Any:
    """Decode JSON text ``content`` that claims to be in ``encoding``.

    Raises:
        RequestError: with code ``unknown_encoding``, ``bad_encoding``,
            ``invalid_json`` or ``too_deep``.
    """
    try:
        codec = codecs.lookup(encoding)
    except (LookupError, ValueError) as exc:
        # ValueError for names no codec can have: "utf-8\x00", or lone
        # surrogates (UnicodeEncodeError).
        raise RequestError(
            f"unknown content-encoding {excerpt(encoding)!r}", code=codes.UNKNOWN_ENCODING
        ) from exc
    if codec.name in _ESCAPE_CODECS:
        raise RequestError(
            f"content-encoding {excerpt(encoding)!r} is Python escape syntax, not a text encoding",
            code=codes.UNKNOWN_ENCODING,
        )
    if codec.name in _QUADRATIC_CODECS:
        raise RequestError(
            f"content-encoding {excerpt(encoding)!r} is not supported (too slow to decode)",
            code=codes.UNKNOWN_ENCODING,
        )
    try:
        text = content.decode(encoding)
    except LookupError as exc:
        # Raised for codecs that are not bytes-to-text, such as "rot13".
        raise RequestError(
            f"unknown content-encoding {excerpt(encoding)!r}", code=codes.UNKNOWN_ENCODING
        ) from exc
    except (UnicodeError, ValueError) as exc:
        # UnicodeDecodeError for most codecs; a few (idna, for one) raise
        # plain UnicodeError or ValueError for bytes they cannot decode.
        raise RequestError(
            f"content is not valid {encoding}: {exc}", code=codes.BAD_ENCODING
        ) from exc
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise RequestError("JSON content is nested too deeply", code=codes.TOO_DEEP) from exc
    except ValueError as exc:
        # JSONDecodeError, or a number with more digits than int() accepts
        # (sys.get_int_max_str_digits()), which json.loads lets through.
        raise RequestError(f"content is not valid JSON: {exc}", code=codes.INVALID_JSON) from exc
