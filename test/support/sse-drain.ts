/**
 * Opens `streams` SSE streams to `url` at once and reads them as fast as they come, discarding
 * what arrives, for `seconds`; prints {"bytes": N, "streams": opened}. A process of its own, so that
 * the reading costs the test process (and the control client in it) nothing.
 * usage: bun sse-drain.ts URL STREAMS SECONDS
 */
export {};

const [url, streams, seconds] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])];
let bytes = 0;
let opened = 0;
const stop = AbortSignal.timeout(seconds * 1000);
await Promise.all(
  Array.from({ length: streams }, async () => {
    try {
      const res = await fetch(url, { signal: stop });
      if (res.status !== 200) return;
      opened++;
      for await (const chunk of res.body!) bytes += chunk.byteLength;
    } catch {
      // the timeout ends every stream
    }
  }),
);
console.log(JSON.stringify({ bytes, streams: opened }));
process.exit(0);
