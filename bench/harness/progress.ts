/**
 * One live status line on stderr: rewritten in place on a terminal, and every fifth update as a
 * plain line otherwise (CI logs, pipes), so a long run still shows it is alive.
 */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private updates = 0;
  private shown = false;

  constructor(private readonly label: string) {}

  update(line: string): void {
    this.updates++;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K[${this.label}] ${line}`);
      this.shown = true;
    } else if (this.updates % 5 === 0) {
      process.stderr.write(`[${this.label}] ${line}\n`);
    }
  }

  done(): void {
    if (this.shown) process.stderr.write("\n");
    this.shown = false;
  }
}
