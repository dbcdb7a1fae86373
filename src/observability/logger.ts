/** One JSON object per line on stdout: what log shippers expect, and what tests parse. */
export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

// JSON.stringify escapes the C0 controls but leaves the rest as they are. Many readers take U+2028,
// U+2029 and U+0085 for line ends (Python's splitlines, JavaScript before ES2019), so a client's `sub`
// or event type holding one split its audit line in two (outside security tester); the other C1
// controls (U+009B starts a terminal escape) and the bidi controls (U+202E turns the rest of a line
// round on screen) are as unwelcome in a line someone reads. Escaped, the line is the same JSON.
const UNSAFE = /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "g");
const escapeUnsafe = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

export function createLogger(min: Level): Logger {
  // A closed stdout (EPIPE when whoever read it went away) must never take the gateway down: the
  // failure can come back synchronously or as the stream's error event.
  process.stdout.on("error", () => {});
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < order[min]) return;
    try {
      // Fields first: one named time, level or msg must not overwrite the line's own.
      const line = JSON.stringify({ ...fields, time: new Date().toISOString(), level, msg });
      process.stdout.write(`${UNSAFE.test(line) ? line.replace(UNSAFE_ALL, escapeUnsafe) : line}\n`);
    } catch {}
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}
