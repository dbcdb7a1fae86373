import { Packr, Unpackr } from "msgpackr";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

/** Opens a WebSocket to the gateway and completes hello → welcome; the caller then sets onmessage. */
export async function connectHelloed(url: string): Promise<{ ws: WebSocket; welcome: Record<string, any> }> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`could not connect to ${url}`));
  });
  const welcome = await new Promise<Record<string, any>>((resolve, reject) => {
    ws.onmessage = (m) => resolve(unpackr.unpack(new Uint8Array(m.data as ArrayBuffer)));
    ws.onclose = (e) => reject(new Error(`closed before welcome: ${e.code} ${e.reason}`));
    ws.send(packr.pack({ t: 1, v: 1, client: "kgw-bench" }));
  });
  if (welcome.t !== 2) throw new Error(`expected a welcome frame, got ${JSON.stringify(welcome)}`);
  return { ws, welcome };
}
