// The page's static files, read once at start-up and served from memory with an ETag.
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { pageModule } from '../protocol/page-module.ts';

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

/** A file's body ready to serve under `name`, with its content type and an ETag from its digest. */
export async function asset(name: string, body: Uint8Array<ArrayBuffer>): Promise<Asset> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
  const etag = `"${Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, '0')).join('')}"`;
  return { body, type: TYPES[extname(name)] ?? 'application/octet-stream', etag };
}

/**
 * Read every file in `dir` (one level) into memory, keyed by file name, with protocol.js, the page's
 * copy of the protocol's codes and limits, made from the protocol module.
 */
export async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    assets.set(entry.name, await asset(entry.name, new Uint8Array(await readFile(join(dir, entry.name)))));
  }
  assets.set('protocol.js', await asset('protocol.js', new TextEncoder().encode(pageModule())));
  return assets;
}
