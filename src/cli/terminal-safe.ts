/**
 * What kgw prints comes from the gateway and from whoever wrote to Kafka: an event type, a key, an
 * error message echoing a client's header name. Control characters in it would reach the terminal as
 * commands (ESC sequences retitle the window, move the cursor, rewrite what was printed before), so
 * they are printed as \u escapes instead: C0 (tab and newline too, which would break the line and
 * its columns), DEL, and C1 (U+0080–U+009F, which some terminals obey even in UTF-8).
 */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;
const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** Text for a terminal line. */
export function safeText(s: string): string {
  return s.replace(CONTROLS, escape);
}

/**
 * JSON for a terminal line: JSON.stringify escapes C0 already but leaves DEL and C1 as they are;
 * written as \u escapes, the JSON reads back the same.
 */
export function safeJson(json: string): string {
  return json.replace(CONTROLS, escape);
}
