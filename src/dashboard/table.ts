import { type DeliveredEvent, bigintAsDigits } from "../client/index";
import type { EventRing } from "./ring";

const ROW_HEIGHT = 22;
const COLUMNS = 5;

/**
 * The live event table, virtualised: only the rows in view exist in the DOM (a pool reused on every
 * scroll and frame), over a spacer as tall as all rows; the newest event is on top. `render` is
 * called once per animation frame at most, and only when something changed.
 */
export class EventTable {
  /** The newest sequence number shown: frozen while paused. */
  private top = -1;
  private readonly pool: HTMLDivElement[] = [];
  private readonly spacer: HTMLElement;
  private readonly body: HTMLElement;
  private selected = -1;

  constructor(
    private readonly el: HTMLElement,
    private readonly ring: EventRing,
    private readonly onPick: (e: DeliveredEvent) => void,
  ) {
    this.spacer = el.querySelector(".spacer")!;
    this.body = el.querySelector(".rows")!;
    el.addEventListener("scroll", () => this.render());
    this.body.addEventListener("click", (ev) => {
      const row = (ev.target as HTMLElement).closest<HTMLElement>(".row");
      const seq = Number(row?.dataset.seq);
      const e = Number.isInteger(seq) ? this.ring.get(seq) : undefined;
      if (!e) return;
      this.selected = seq;
      this.onPick(e);
      this.render();
    });
  }

  /** Shows up to the newest event (unless paused, when the caller stops calling follow). */
  follow(): void {
    this.top = this.ring.next - 1;
  }

  render(): void {
    const count = this.top < 0 ? 0 : this.top - this.ring.oldest + 1;
    this.spacer.style.height = `${count * ROW_HEIGHT}px`;
    const first = Math.floor(this.el.scrollTop / ROW_HEIGHT);
    const visible = Math.min(count - first, Math.ceil(this.el.clientHeight / ROW_HEIGHT) + 1);
    while (this.pool.length < visible) this.pool.push(this.makeRow());
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i]!;
      const seq = this.top - first - i;
      const e = i < visible ? this.ring.get(seq) : undefined;
      if (!e) {
        row.hidden = true;
        continue;
      }
      row.hidden = false;
      row.style.transform = `translateY(${(first + i) * ROW_HEIGHT}px)`;
      row.classList.toggle("selected", seq === this.selected);
      if (row.dataset.seq === String(seq)) continue; // already shows this event
      row.dataset.seq = String(seq);
      const cells = row.children;
      const ev = e.event;
      cells[0]!.textContent = ev.time ? String(ev.time).slice(11, 23) : "";
      cells[1]!.textContent = `${e.topic}/${e.partition}@${e.offset}`;
      cells[2]!.textContent = ev.type;
      cells[3]!.textContent = keyText(ev) ?? "";
      cells[4]!.textContent = preview(ev.data ?? ev.data_base64);
    }
  }

  /** Forgets which events rows show (after a clear, or a selection change). */
  reset(): void {
    for (const row of this.pool) delete row.dataset.seq;
    this.top = this.ring.next - 1;
  }

  private makeRow(): HTMLDivElement {
    const row = document.createElement("div");
    row.className = "row";
    row.style.height = `${ROW_HEIGHT}px`;
    for (let c = 0; c < COLUMNS; c++) row.appendChild(document.createElement("span"));
    this.body.appendChild(row);
    return row;
  }
}

function preview(data: unknown): string {
  if (data === undefined) return "";
  const text = typeof data === "string" ? data : JSON.stringify(data, bigintAsDigits);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

/** The key as shown: its text, or its bytes in base64 when it is not UTF-8 (the dashboard speaks JSON). */
export function keyText(ev: DeliveredEvent["event"]): string | undefined {
  if (typeof ev.key === "string") return ev.key;
  return ev.key_base64 !== undefined ? `base64:${ev.key_base64}` : undefined;
}
