/**
 * Prints what each failed test printed before bun named it (its own output and the assertion that
 * failed), from the runs' logs: the CI shows only the end of its log, where the failures' names
 * alone said too little to find the cause (ci55). At most the last 30 lines of each, cut to 240
 * characters. Usage: bun scripts/failure-context.ts LOG...
 */
const RESULT = /^\((pass|fail|skip|todo)\) /;
const MAX_LINES = 30;
const MAX_CHARS = 240;

for (const path of Bun.argv.slice(2)) {
  const lines = (await Bun.file(path).text()).split("\n");
  const seen = new Set<string>();
  let since: string[] = [];
  for (const line of lines) {
    // A file's header ("test/x.test.ts:") or another test's result starts the next test's output.
    if (/^\S+\.test\.ts:$/.test(line)) since = [];
    else if (RESULT.test(line)) {
      // bun names each failure again in its summary: the first time is the one with its output.
      if (line.startsWith("(fail) ") && !seen.has(line)) {
        seen.add(line);
        console.log(`[test] --- ${line.slice(0, MAX_CHARS)}`);
        for (const l of since.slice(-MAX_LINES)) console.log(`[test]   ${l.slice(0, MAX_CHARS)}`);
      }
      since = [];
    } else since.push(line);
  }
}
