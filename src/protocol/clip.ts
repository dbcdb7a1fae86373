/**
 * `text`, or its start (never half of a surrogate pair) and how much was left out: for refusals that
 * repeat a client's own strings, which can be as long as a frame.
 */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = (text.charCodeAt(max - 1) & 0xfc00) === 0xd800 ? max - 1 : max;
  return `${text.slice(0, end)}…(${text.length - end} more characters)`;
}
