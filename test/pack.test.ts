// The npm package as users get it: packed, installed alone into an empty directory, run with npx.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServerProcess } from '../support/server-process.ts';
import { browserClient, consoleClient, ofType } from './helpers/clients.ts';
import { ROOT, runProcess } from './helpers/process.ts';
import { tempDir } from './helpers/server.ts';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

let dir: string;
let cleanup: () => Promise<void>;
let packed: { filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> };
/** The empty directory the tarball was installed into. */
let home: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  // dist/ is what `npm test` just built; --ignore-scripts keeps the pack from rebuilding it under the
  // feet of the other test files running the built server.
  const pack = await runProcess(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
    cwd: ROOT,
  });
  if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const json = pack.stdout.slice(pack.stdout.indexOf('['));
  [packed] = JSON.parse(json) as [typeof packed];
  home = join(dir, 'home');
  await runProcess('mkdir', [home]);
  const install = await runProcess(
    npm,
    ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', join(dir, packed.filename)],
    { cwd: home },
  );
  if (install.code !== 0) throw new Error(`npm install of the tarball failed:\n${install.stderr}`);
}, 180_000);

afterAll(async () => {
  await server?.stop('SIGKILL');
  await cleanup?.();
});

describe('npm package', () => {
  it('holds only the compiled JavaScript, static/, drizzle/, docs (the Grafana dashboard too), README, LICENSE and CHANGELOG', () => {
    const paths = packed.files.map((f) => f.path);
    const allowed =
      /^(dist\/.+\.js|static\/.+|drizzle(-pg)?\/.+|docs\/.+\.(md|json)|README\.md|LICENSE|CHANGELOG\.md|SECURITY\.md|CONTRIBUTING\.md|package\.json)$/u;
    expect(paths.filter((p) => !allowed.test(p))).toEqual([]);
    for (const needed of ['dist/main.js', 'static/index.html', 'drizzle/meta/_journal.json', 'LICENSE']) {
      expect(paths).toContain(needed);
    }
    // Migrations ship as SQL and the journal; drizzle-kit's snapshots are for making the next one.
    expect(paths.filter((p) => p.endsWith('_snapshot.json'))).toEqual([]);
    // A bound that catches a stray build or test tree (the tests alone are about 210 KiB packed), not
    // the product growing: it ships two clients, the page and its docs, about 300 KiB packed.
    expect(packed.size).toBeLessThan(400 * 1024);
  });

  it('installs with production dependencies only', async () => {
    const modules = join(home, 'node_modules');
    expect(existsSync(join(modules, 'runspec-room', 'dist', 'main.js'))).toBe(true);
    expect(existsSync(join(modules, '@libsql', 'client'))).toBe(true);
    for (const dev of ['typescript', 'vitest', 'deno', '@biomejs', 'playwright-core']) {
      expect(existsSync(join(modules, dev))).toBe(false);
    }
  });

  it('npx runspec-room --help lists every flag and environment variable of the README table', async () => {
    const { code, stdout } = await runProcess(npx, ['--no-install', 'runspec-room', '--help'], { cwd: home });
    expect(code).toBe(0);
    const readme = await readFile(join(home, 'node_modules', 'runspec-room', 'README.md'), 'utf8');
    // The rows of the tables in the Configuration section, up to the next section.
    const section = readme.slice(readme.indexOf('\n## Configuration'));
    const rows = section
      .slice(0, section.indexOf('\n## ', 1))
      .split('\n')
      .filter((line) => line.startsWith('|'))
      .join('\n');
    const names = new Set([...rows.matchAll(/`(--[a-z-]+|CONSOLE_ROOM_[A-Z_]*[A-Z])/gu)].map((m) => m[1]));
    expect(names.size).toBeGreaterThan(10);
    for (const name of names) expect(stdout).toContain(name);
  });

  it('npx runspec-room starts the full server with its database in the working directory', async () => {
    server = await spawnServerProcess(
      npx,
      ['--no-install', 'runspec-room', '--port', '0', '--ndjson-port', '0'],
      {
        cwd: home,
      },
    );
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/u);
    expect(server.consolePort).toBeGreaterThan(0);
    expect(existsSync(join(home, 'console_room.db'))).toBe(true);

    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/static/app.js');
    expect((await fetch(`${server.url}/static/style.css`)).status).toBe(200);
    expect(await (await fetch(`${server.url}/healthz`)).json()).toMatchObject({ status: 'ok' });

    const ops = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'ops',
      user: 'ops',
      protocol: 2,
    });
    await ops.waitFor((f) => f.type === 'welcome');
    const carol = await browserClient(server.url as string, 'carol', 'ops');
    await carol.waitFor((f) => f.type === 'welcome');
    ops.send({ type: 'message', text: 'from the console' });
    carol.send({ type: 'message', text: 'from the browser' });
    for (const client of [carol, ops]) {
      for (const text of ['from the console', 'from the browser']) {
        await client.waitFor((f) => f.type === 'message' && f.text === text);
      }
    }
    expect(ofType(carol.frames, 'message').map((f) => f.id)).toEqual(
      ofType(ops.frames, 'message').map((f) => f.id),
    );

    // npx itself dies of the signal; the server under it shuts down gracefully.
    await server.stop('SIGTERM');
    expect((await carol.closed).code).toBe(1012);
    expect(server.output()).toMatch(/shutting down signal=SIGTERM[\s\S]* stopped/u);
  });
});
