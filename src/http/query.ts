import { GatewayError } from "../protocol/errors";

/**
 * A query parameter the route does not take, as the refusal naming it (null when there is none), as
 * a frame's unknown field is refused: ignored, a misspelt `topc` published to the default topic and
 * a misspelt `filtr` streamed every event of the topic. `hint`: what the route's caller should know
 * besides, said after the list.
 */
export function unknownParam(params: URLSearchParams, allowed: readonly string[], hint = ""): GatewayError | null {
  for (const name of params.keys()) {
    if (!allowed.includes(name)) return new GatewayError("INVALID_FRAME", `unknown query parameter ${JSON.stringify(name.slice(0, 100))}; this route takes ${allowed.length > 0 ? allowed.join(", ") : "none"}${hint}`);
  }
  return null;
}
