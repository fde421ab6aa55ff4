// The page's static files, read once at start-up and served from memory with an ETag.
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';

/** One static file ready to serve. */
export interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
};

/** Read every file in `dir` (one level) into memory, keyed by file name. */
export async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const body = new Uint8Array(await readFile(join(dir, entry.name)));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
    const etag = `"${Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, '0')).join('')}"`;
    assets.set(entry.name, { body, type: TYPES[extname(entry.name)] ?? 'application/octet-stream', etag });
  }
  return assets;
}
