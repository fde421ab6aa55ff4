// The transcript writer thread from the TypeScript sources, for servers and stores the tests start in-process.

/**
 * A worker entry that registers tsx (a development dependency) in its thread, then loads the
 * TypeScript module `entry`: Node 20 cannot start a thread from a .ts file by itself.
 */
export function typescriptThread(entry: URL): URL {
  const code = [
    `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};`,
    'register();',
    `await import(${JSON.stringify(entry.href)});`,
  ].join('\n');
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

/** The real writer thread (src/store/append-worker.ts). */
export const WRITER_THREAD = typescriptThread(new URL('../../src/store/append-worker.ts', import.meta.url));

/** The real search thread (src/store/search-worker.ts). */
export const SEARCH_THREAD = typescriptThread(new URL('../../src/store/search-worker.ts', import.meta.url));

/** The real writer thread with two ways to die on cue (test/helpers/crashing-writer.ts). */
export const CRASHING_WRITER_THREAD = typescriptThread(new URL('./crashing-writer.ts', import.meta.url));
