// Deno entry: the same flags, environment, logs and exit codes as the Node entry, with Deno's web door.
import { CommandError, commandsHelp, STORE_COMMANDS, UsageError } from './cli/commands.ts';
import { ConfigError, helpText, parseCommand } from './config.ts';
import { warnIfFewDescriptors } from './descriptors.ts';
import { batchedWriter, createLog } from './log.ts';
import { StartError, startServer, type WebStarter } from './server.ts';
import { VERSION } from './version.ts';

const encoder = new TextEncoder();
/** All of `text` to standard output; a reader that went away (`… | head`) ends the process quietly. */
function out(text: string): void {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    throw error;
  }
}
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

/** `out`, without holding up the event loop while the reader catches up (an export of any length). */
async function writeOut(text: string): Promise<void> {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(await Deno.stdout.write(bytes));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    throw error;
  }
}

/**
 * A subcommand (`deno task start keys …`), when the first argument names one; else undefined. The
 * database's subcommands only: the console and MCP clients run on Node.
 */
async function subcommand(argv: string[]): Promise<number | undefined> {
  // Named here, not imported: their modules (and the MCP SDK) are for Node.
  if (argv[0] === 'console' || argv[0] === 'mcp')
    fail(`${argv[0]} runs on Node: npx runspec-room ${argv[0]} …`, 2);
  const entry = argv[0] === undefined ? undefined : STORE_COMMANDS[argv[0]];
  if (!entry) return undefined;
  const run = await entry.load();
  try {
    return await run({
      argv: argv.slice(1),
      env: Deno.env.toObject(),
      stdout: out,
      write: writeOut,
      stderr: err,
    });
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) fail(error.message, 2);
    if (error instanceof CommandError) fail(error.message, 1);
    throw error;
  }
}

async function main(): Promise<void> {
  const code = await subcommand(Deno.args);
  if (code !== undefined) {
    stderr.flush();
    Deno.exit(code);
  }
  let command: ReturnType<typeof parseCommand>;
  try {
    command = parseCommand(Deno.args, Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  if (command.kind === 'help') {
    out(helpText() + commandsHelp(STORE_COMMANDS));
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
  warnIfFewDescriptors(() => Deno.readTextFileSync('/proc/self/limits'), config.limits, log);
  // Only now: a signal that comes before its listener kills the process outright, without a graceful stop.
  log.info('ready', { version: VERSION, runtime: `deno/${Deno.version.deno}` });
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error), 1));
