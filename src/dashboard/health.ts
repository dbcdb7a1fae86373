/**
 * The delivery-health view: polls GET /api/v1/admin/delivery (docs/dashboard.md) and shows every
 * subscription on the instance, worst first, with the instance's workers, brokers and readiness.
 */
interface Row {
  connection: string;
  peer: string;
  principal: string;
  transport: string;
  sub: string;
  topics: string[];
  filter: unknown;
  policy: string;
  share: string | null;
  state: string;
  delivered: number;
  matched: number;
  examined: number;
  queuedBytes: number;
  dropped: number;
  redealt?: number;
  laggedNotices: number;
  slowDisconnects: number;
  gaps: number;
  lag: number | null;
}

interface Report {
  ready: boolean;
  bufferBytes: number;
  total: number;
  subscriptions: Row[];
  ended: Row[];
  health: { status: string; version: string; connections: number; durable: boolean; auth: string; warnings: string[]; log: { kind: string; ready: boolean; workers?: Array<Record<string, unknown>> } };
}

const POLL_MS = 2000;
const REFUSED_CHECK_MS = 500;

export function startHealthView(opts: { token: () => string; onTopics: (topics: string[]) => void }): void {
  const status = document.getElementById("health-status")!;
  const failure = document.getElementById("health-error")!;
  const instance = document.getElementById("instance")!;
  const body = document.querySelector<HTMLTableSectionElement>("#deliveries tbody")!;

  // A token the gateway refused is not sent again (each refusal is an audit line): polling waits
  // for the token field to change.
  let refused: string | null = null;

  async function poll(): Promise<void> {
    try {
      const token = opts.token();
      if (token === refused) return;
      const res = await fetch("/api/v1/admin/delivery", { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: "no-store" });
      const json = await res.json();
      if (!res.ok) {
        const e = json.error ?? {};
        failure.textContent = `${e.code ?? res.status}: ${e.message ?? res.statusText}`;
        if (res.status === 401 || res.status === 403) refused = token;
        return;
      }
      refused = null;
      failure.textContent = "";
      render(json as Report);
    } catch (e) {
      failure.textContent = `the gateway did not answer: ${(e as Error).message}`;
    } finally {
      setTimeout(() => void poll(), refused === null ? POLL_MS : REFUSED_CHECK_MS);
    }
  }

  function render(r: Report): void {
    const h = r.health;
    status.textContent = `${r.ready ? "ready" : "NOT READY"} · ${r.total} subscriptions · updated ${new Date().toLocaleTimeString()}`;
    status.className = r.ready ? "ok" : "bad";
    instance.replaceChildren(
      line(`${h.version} · log ${h.log.kind}${h.durable ? "" : " (in memory, not durable)"} · auth ${h.auth} · ${h.connections} connections · status ${h.status}`),
      ...(h.log.workers ?? []).map((w) => line(`worker ${w.worker}: ${w.state}, brokers ${w.brokers ?? "?"}, in flight ${w.inflight}, restarts ${w.restarts}${w.lastError ? `, ${w.lastError}` : ""}`, w.state === "ready" && w.brokers === "up" ? "ok" : "bad")),
      ...h.warnings.map((w) => line(w, "warn")),
    );
    const rows = [...r.subscriptions, ...r.ended];
    body.replaceChildren(...rows.map((s) => tr(s, r.bufferBytes)));
    opts.onTopics([...new Set(rows.flatMap((s) => s.topics))]);
  }

  void poll();
}

function line(text: string, cls = ""): HTMLElement {
  const p = document.createElement("div");
  p.textContent = text;
  p.className = cls;
  return p;
}

function tr(s: Row, bufferBytes: number): HTMLTableRowElement {
  const row = document.createElement("tr");
  row.dataset.sub = s.sub;
  row.dataset.state = s.state;
  if (s.dropped > 0 || s.slowDisconnects > 0) row.className = "bad";
  else if (s.queuedBytes > bufferBytes / 2) row.className = "warn";
  const pct = s.examined > 0 ? `${((100 * s.matched) / s.examined).toFixed(1)}% (${s.matched}/${s.examined})` : "–";
  const cells: Array<[string, string]> = [
    ["connection", `${s.transport} ${s.connection.slice(0, 8)}`],
    ["peer", s.peer],
    ["principal", s.principal],
    ["sub", s.sub],
    ["topics", s.topics.join(", ")],
    ["filter", compact(s.filter)],
    ["policy", s.share ? `${s.policy}, share ${s.share}` : s.policy],
    ["state", s.state],
    ["delivered", String(s.delivered)],
    ["selectivity", pct],
    ["queued", `${s.queuedBytes} / ${bufferBytes}`],
    // A share member's re-dealt events went to another member: shown, but not as losses.
    ["dropped", s.redealt ? `${s.dropped} (${s.redealt} re-dealt)` : String(s.dropped)],
    ["lagged", String(s.laggedNotices)],
    ["disconnects", String(s.slowDisconnects)],
    ["gaps", String(s.gaps ?? 0)],
    ["lag", s.lag === null ? "?" : String(s.lag)],
  ];
  for (const [name, text] of cells) {
    const td = document.createElement("td");
    td.dataset.col = name;
    td.textContent = text;
    if (name === "queued") td.style.setProperty("--fill", `${Math.min(100, (100 * s.queuedBytes) / bufferBytes)}%`);
    row.appendChild(td);
  }
  return row;
}

/** The filter without its empty parts: what the subscriber asked for. */
function compact(filter: unknown): string {
  // A long filter comes as text already: its start and its length.
  if (typeof filter === "string") return filter;
  if (typeof filter !== "object" || filter === null) return "";
  const parts = Object.entries(filter).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0));
  return parts.length === 0 ? "(all)" : JSON.stringify(Object.fromEntries(parts));
}
