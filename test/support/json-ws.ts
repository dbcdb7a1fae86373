/**
 * A JSON WebSocket, helloed, whose replies are matched by cid; every other frame goes to `onEvent`.
 * For tests that read a reply's raw fields (subscribed.start, an unsubscribe's token) the SDK hides.
 */
export async function openJsonWs(url: string, onEvent: (f: any) => void = () => {}) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)));
  const pending = new Map<number, (f: any) => void>();
  let cid = 1;
  ws.onmessage = (m) => {
    const f = JSON.parse(String(m.data));
    const r = f.cid !== undefined ? pending.get(f.cid) : undefined;
    if (r) {
      pending.delete(f.cid);
      r(f);
    } else onEvent(f);
  };
  const req = (f: object): Promise<any> => {
    const c = cid++;
    ws.send(JSON.stringify({ ...f, cid: c }));
    return new Promise((resolve) => pending.set(c, resolve));
  };
  await req({ t: 1, v: 1 });
  return { ws, req };
}
