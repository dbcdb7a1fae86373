import { GatewayError } from "../protocol/errors";

/**
 * A query parameter the route does not take, as the refusal naming it (null when there is none), as
 * a frame's unknown field is refused: ignored, a misspelt `topc` published to the default topic and
 * a misspelt `filtr` streamed every event of the topic.
 */
export function unknownParam(params: URLSearchParams, allowed: readonly string[]): GatewayError | null {
  for (const name of params.keys()) {
    if (!allowed.includes(name)) return new GatewayError("INVALID_FRAME", `unknown query parameter ${JSON.stringify(name.slice(0, 100))}; ${allowed.length > 0 ? `this route takes ${allowed.join(", ")}` : "this route takes none (a WebSocket's token goes in the Authorization header, the subprotocol or the hello)"}`);
  }
  return null;
}
