/**
 * application/json or a +json structured suffix (RFC 6838), then only parameters (RFC 9110 media
 * type: token "/" token, OWS ";"), in any case. A type that merely begins like it is another format:
 * application/json-seq records start with 0x1e, and were read as JSON.
 */
const JSON_MEDIA_TYPE = /^\s*application\/(?:[!#$%&'*.^_`|~0-9a-z-]+\+)?json\s*(?:;|$)/i;
/** msgpack's names in use: application/msgpack (the gateway's), x-msgpack and vnd.msgpack. */
const MSGPACK_MEDIA_TYPE = /^\s*application\/(?:x-|vnd\.)?msgpack\s*(?:;|$)/i;
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)/gi;
const UTF8 = /^utf-?8$/i;

export function isJsonMediaType(type: string): boolean {
  return JSON_MEDIA_TYPE.test(type);
}

/**
 * The charset parameter of a media type, if it names one. Named twice or more, all the names, comma
 * separated, unless they agree: `charset=utf-8; charset=latin1` names no one charset (a reader taking
 * the last reads latin1), and is not UTF-8's.
 */
export function charsetOf(type: string): string | undefined {
  let found: string | undefined;
  for (const m of type.matchAll(CHARSET)) {
    const name = m[1]!;
    if (found === undefined) found = name;
    else if (!sameCharset(found, name)) found = `${found}, ${name}`;
  }
  return found;
}

function sameCharset(names: string, name: string): boolean {
  return names.split(", ").every((n) => n.toLowerCase() === name.toLowerCase() || (isUtf8Charset(n) && isUtf8Charset(name)));
}

/** Whether a charset name is UTF-8's (`utf-8`, `utf8`, any case). */
export function isUtf8Charset(charset: string): boolean {
  return UTF8.test(charset);
}

/**
 * How a record's payload is encoded, by its content-type: JSON (UTF-8: RFC 8259; one declared in
 * another charset is text the gateway does not read), msgpack, or neither (bytes). Another producer
 * writes `application/json; charset=utf-8` or `Application/JSON` as often as the gateway's own
 * spelling; those were delivered as bytes and invisible to `where`.
 */
export function payloadEncoding(type: string | undefined): "json" | "msgpack" | null {
  if (type === undefined) return null;
  // What the gateway itself writes, without a regular expression.
  if (type === "application/json") return "json";
  if (type === "application/msgpack") return "msgpack";
  if (JSON_MEDIA_TYPE.test(type)) {
    const charset = charsetOf(type);
    return charset === undefined || isUtf8Charset(charset) ? "json" : null;
  }
  return MSGPACK_MEDIA_TYPE.test(type) ? "msgpack" : null;
}
