/** `bun run bench -- <scenario> [options]`: runs one scenario from bench/. */
const scenarios: Record<string, string> = {
  ingest: "./ingest.ts",
  fanout: "./fanout.ts",
  "filter-index": "./filter-index.ts",
};
const [name, ...rest] = process.argv.slice(2);
if (!name || !(name in scenarios)) {
  console.error(`usage: bun run bench -- <${Object.keys(scenarios).join("|")}> [options]`);
  process.exit(2);
}
process.argv = [process.argv[0]!, process.argv[1]!, ...rest];
await import(scenarios[name]!);
export {};
