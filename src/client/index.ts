/**
 * The gateway's client, for browsers, Bun and Node (with a WebSocket class): `connect`, then
 * `publish` and `subscribe`. Guide: docs/client.md.
 */
export { type ConnectOptions, GatewayClient } from "./client";
export { PublishError, type PublishResult, type PublishRetry } from "./publisher";
export { type Notice, SubscribeError, type SubscribeOptions, Subscription, describeGap } from "./subscription";
export type { Codec, Degraded, DeliveredEvent, ErrorCode, Gap, OutgoingEvent, Start, WireError } from "./wire";
export { bigintAsDigits, parseJsonValue } from "./wire";

import { type ConnectOptions, GatewayClient } from "./client";
export const connect = (options: ConnectOptions): Promise<GatewayClient> => GatewayClient.connect(options);
