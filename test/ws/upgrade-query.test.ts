import { expect, test } from "bun:test";
import { gatewayForBlock } from "../support/gateway";

/**
 * The WebSocket path takes no query parameter, as an HTTP route refuses one it does not take (outside
 * probe V: /ws?x=1 upgraded). Ignored, a token in ?access_token, as an EventSource sends it, opened a
 * socket that was refused only at its hello, with nothing to say why.
 */
const file = gatewayForBlock({ KAFKA_BROKERS: "" });

const upgrade = (path: string) =>
  fetch(file.gw.url + path, { headers: { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13" } });

test("an upgrade with a query parameter is refused 400 INVALID_FRAME naming it; without one (or with an empty query) it opens", async () => {
  for (const path of ["/ws?access_token=abc", "/api/v1/ws?x=1", "/ws?codec=json&x"]) {
    const r = await upgrade(path);
    expect([path, r.status]).toEqual([path, 400]);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("INVALID_FRAME");
    expect(body.error.message).toContain("unknown query parameter");
  }
  for (const path of ["/ws", "/ws?", "/api/v1/ws"]) {
    const ws = new WebSocket(file.gw.wsUrl.replace("/ws", path));
    const opened = await new Promise<boolean>((resolve) => ((ws.onopen = () => resolve(true)), (ws.onerror = () => resolve(false))));
    expect([path, opened]).toEqual([path, true]);
    ws.close();
  }
});
