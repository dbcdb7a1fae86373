/** One JSON object per line on stdout: what log shippers expect, and what tests parse. */
export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(min: Level): Logger {
  // A closed stdout (EPIPE when whoever read it went away) must never take the gateway down: the
  // failure can come back synchronously or as the stream's error event.
  process.stdout.on("error", () => {});
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < order[min]) return;
    try {
      // Fields first: one named time, level or msg must not overwrite the line's own.
      process.stdout.write(`${JSON.stringify({ ...fields, time: new Date().toISOString(), level, msg })}\n`);
    } catch {}
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}
