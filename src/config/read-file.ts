import { closeSync, openSync, readSync } from "node:fs";

/** What a configuration file (a certificate, a key, CONFIG_FILE) may hold: PEM chains and JWKs are kilobytes. */
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024;

/**
 * The file's text, read up to `maxBytes`: a longer file is an error, said before any more is read.
 * readFileSync has no bound: TLS_CERT_FILE=/dev/zero grew the gateway to 870 MB in 6 s with nothing
 * said and nothing listening (outside security tester). Throws the file system's error, or a
 * RangeError naming the bound.
 */
export function readConfigFile(file: string, maxBytes = CONFIG_FILE_MAX_BYTES): string {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > maxBytes) throw new RangeError(`it is larger than ${maxBytes} bytes`);
    }
    return buf.toString("utf8", 0, n);
  } finally {
    closeSync(fd);
  }
}
