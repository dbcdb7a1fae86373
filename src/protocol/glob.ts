/**
 * A glob where `*` is any run of characters (line breaks included) and every other character is
 * itself, compiled once: the types of filters, and the topic and type patterns of token grants.
 * Not a RegExp: `a*b*c*…` as a regex backtracks on long subjects that do not match (a grant
 * `*a*a*a*a*a*b` took 14 s on 249 characters, `*.*.*.*.*.events` half a second on a 248-character
 * topic, each request). Here the first and last parts are anchored checks and each middle part is
 * placed at its leftmost occurrence (which is always safe for `*`-only globs), so a test costs one
 * pass over the subject per part.
 */
export function glob(pattern: string): (s: string) => boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return (s) => s === pattern;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p !== "");
  const min = first.length + last.length + middle.reduce((n, p) => n + p.length, 0);
  if (middle.length === 0) {
    if (last === "") return (s) => s.startsWith(first);
    if (first === "") return (s) => s.endsWith(last);
  }
  return (s) => {
    if (s.length < min || !s.startsWith(first) || !s.endsWith(last)) return false;
    const end = s.length - last.length;
    let from = first.length;
    for (const m of middle) {
      const i = s.indexOf(m, from);
      if (i === -1 || i + m.length > end) return false;
      from = i + m.length;
    }
    return true;
  };
}
