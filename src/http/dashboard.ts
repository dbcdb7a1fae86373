import { resolve } from "node:path";
import type { Logger } from "../observability/logger";
import { error } from "./responses";

/** Where the dashboard's sources are: plain TypeScript, CSS and HTML, bundled by Bun at first request. */
const SOURCES = resolve(import.meta.dir, "../dashboard");

// The page talks only to the gateway that served it, and may not be framed (its token field).
const HEADERS = {
  "cache-control": "no-cache",
  "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

type Assets = { html: string; js: string; css: string };

/**
 * GET /dashboard and its two assets. The script is src/dashboard/app.ts and what it imports (the
 * client SDK among them), bundled for browsers with Bun.build once, on the first request, and kept in
 * memory: a gateway nobody opens the dashboard of never pays for it, and nothing is fetched from
 * anywhere at run time. The assets carry no data, so they need no token; the page asks for one.
 */
export function createDashboardRoutes(logger: Logger) {
  let built: Promise<Assets> | null = null;
  const assets = (): Promise<Assets> => {
    built ??= (async () => {
      const out = await Bun.build({ entrypoints: [`${SOURCES}/app.ts`], target: "browser", minify: true });
      if (!out.success || !out.outputs[0]) throw new Error(out.logs.map(String).join("\n") || "no output");
      const [html, js, css] = await Promise.all([Bun.file(`${SOURCES}/index.html`).text(), out.outputs[0].text(), Bun.file(`${SOURCES}/style.css`).text()]);
      return { html, js, css };
    })();
    built.catch(() => (built = null)); // a failed build is tried again by the next request
    return built;
  };
  const serve = (pick: keyof Assets, type: string) => async () => {
    try {
      return new Response((await assets())[pick], { headers: { "content-type": type, ...HEADERS } });
    } catch (e) {
      logger.error("the dashboard could not be built", { error: String((e as Error)?.message ?? e) });
      return error("INTERNAL", "the dashboard could not be built; see the gateway's log");
    }
  };
  const page = serve("html", "text/html; charset=utf-8");
  return {
    "/dashboard": { GET: page },
    "/dashboard/": { GET: page },
    "/dashboard/app.js": { GET: serve("js", "text/javascript; charset=utf-8") },
    "/dashboard/style.css": { GET: serve("css", "text/css; charset=utf-8") },
  };
}
