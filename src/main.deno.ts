// Deno entry: the same flags, environment, logs and exit codes as the Node entry, with Deno's web door.
import { ConfigError, helpText, parseCommand } from './config.ts';
import { batchedWriter, createLog } from './log.ts';
import { StartError, startServer, type WebStarter } from './server.ts';
import { VERSION } from './version.ts';

const encoder = new TextEncoder();
const out = (text: string): void => void Deno.stdout.writeSync(encoder.encode(text));
const err = (text: string): void => void Deno.stderr.writeSync(encoder.encode(text));

/** Log lines, written together once per turn of the event loop. */
const stderr = batchedWriter(err);
globalThis.addEventListener('unload', stderr.flush);

function fail(message: string, code: number): never {
  stderr.flush();
  err(`runspec-room: error: ${message}\n`);
  Deno.exit(code);
}

const denoWeb = async (): Promise<WebStarter> => (await import('./web/deno.ts')).startWeb;

async function main(): Promise<void> {
  let command: ReturnType<typeof parseCommand>;
  try {
    command = parseCommand(Deno.args, Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  if (command.kind === 'help') {
    out(helpText());
    return;
  }
  if (command.kind === 'version') {
    out(`${VERSION}\n`);
    return;
  }
  const { config } = command;
  const log = createLog(config.logLevel, stderr.line);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config, log, denoWeb);
  } catch (error) {
    if (error instanceof StartError) fail(error.message, 1);
    throw error;
  }
  let stopping = false;
  const stop = (signal: Deno.Signal): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    server.stop().then(
      () => {
        log.info('stopped');
        stderr.flush();
        Deno.exit(0);
      },
      (error: unknown) => {
        log.error('shutdown failed', { error: String(error) });
        stderr.flush();
        Deno.exit(1);
      },
    );
  };
  Deno.addSignalListener('SIGINT', () => stop('SIGINT'));
  Deno.addSignalListener('SIGTERM', () => stop('SIGTERM'));
  // Only now: a signal that comes before its listener kills the process outright, without a graceful stop.
  log.info('ready', { version: VERSION, runtime: `deno/${Deno.version.deno}` });
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error), 1));
