// Baseline (a): ws + node:net broadcast server, no persistence, each frame encoded once: Node's near-limit.
import { installAgent } from '../agent.ts';
import { announce, baselineArgs, MemoryStore, MiniHub, startConsoleDoor } from './core.ts';
import { startWsDoor } from './ws-door.ts';

installAgent({ eventLoopDelay: true });
const args = baselineArgs();
const hub = new MiniHub(new MemoryStore());
const consolePort = await startConsoleDoor(hub, args.ndjsonPort);
const httpPort = await startWsDoor(hub, args.port);
announce(consolePort, httpPort);
