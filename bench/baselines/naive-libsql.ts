// Baseline (b): as (a), but one awaited libSQL INSERT (WAL, synchronous=FULL) per message before broadcast.
import { pathToFileURL } from 'node:url';
import { createClient } from '@libsql/client';
import { installAgent } from '../agent.ts';
import { announce, baselineArgs, MiniHub, type Msg, type Store, startConsoleDoor } from './core.ts';
import { startWsDoor } from './ws-door.ts';

installAgent({ eventLoopDelay: true });
const args = baselineArgs();
const client = createClient({ url: pathToFileURL(args.db).href });
await client.execute('PRAGMA journal_mode = WAL');
await client.execute('PRAGMA synchronous = FULL');
await client.execute(
  'CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, room TEXT NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL, ts REAL NOT NULL)',
);
await client.execute('CREATE INDEX IF NOT EXISTS messages_room_seq ON messages (room, seq)');

const store: Store = {
  async append(m) {
    const r = await client.execute({
      sql: 'INSERT INTO messages (id, room, sender, text, ts) VALUES (?, ?, ?, ?, ?)',
      args: [m.id, m.room, m.sender, m.text, m.ts],
    });
    return Number(r.lastInsertRowid);
  },
  async recent(room, limit) {
    const r = await client.execute({
      sql: 'SELECT seq, id, room, sender, text, ts FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?',
      args: [room, limit],
    });
    return r.rows.map((row) => ({ ...row }) as unknown as Msg).reverse();
  },
};

const hub = new MiniHub(store);
const consolePort = await startConsoleDoor(hub, args.ndjsonPort);
const httpPort = await startWsDoor(hub, args.port);
announce(consolePort, httpPort);
