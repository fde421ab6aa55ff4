#!/usr/bin/env node
// Node entry: parse flags and environment, start the server, stop it gracefully on SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { CLIENT_COMMANDS } from './cli/client-commands.ts';
import { CommandError, commandsHelp, STORE_COMMANDS, UsageError } from './cli/commands.ts';
import { ConfigError, helpText, parseCommand } from './config.ts';
import { warnIfFewDescriptors } from './descriptors.ts';
import { batchedWriter, createLog } from './log.ts';
import { StartError, startServer } from './server.ts';
import { VERSION } from './version.ts';

/** Log lines, written together once per turn of the event loop. */
const stderr = batchedWriter((text) => process.stderr.write(text));
process.once('exit', stderr.flush);

function fail(message: string, code: number): never {
  stderr.flush();
  process.stderr.write(`runspec-room: error: ${message}\n`);
  process.exit(code);
}

const COMMANDS = { ...STORE_COMMANDS, ...CLIENT_COMMANDS };

/** A subcommand (`runspec-room keys …`), when the first argument names one; else undefined. */
async function subcommand(argv: string[]): Promise<number | undefined> {
  const entry = argv[0] === undefined ? undefined : COMMANDS[argv[0]];
  if (!entry) return undefined;
  const run = await entry.load();
  // A reader that went away (`runspec-room export … | head`) ends the command quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    fail(error.message, 1);
  });
  try {
    return await run({
      argv: argv.slice(1),
      env: process.env,
      stdout: (text) => process.stdout.write(text),
      write: (text) =>
        process.stdout.write(text)
          ? Promise.resolve()
          : new Promise((resolve) => process.stdout.once('drain', resolve)),
      stderr: (text) => process.stderr.write(text),
    });
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) fail(error.message, 2);
    if (error instanceof CommandError) fail(error.message, 1);
    throw error;
  }
}

async function main(): Promise<void> {
  const code = await subcommand(process.argv.slice(2));
  if (code !== undefined) {
    process.exitCode = code;
    return;
  }
  let command: ReturnType<typeof parseCommand>;
  try {
    command = parseCommand(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  if (command.kind === 'help') {
    process.stdout.write(helpText() + commandsHelp(COMMANDS));
    return;
  }
  if (command.kind === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const { config } = command;
  const log = createLog(config.logLevel, stderr.line);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config, log);
  } catch (error) {
    if (error instanceof StartError) fail(error.message, 1);
    throw error;
  }
  const stop = (signal: string): void => {
    log.info('shutting down', { signal });
    server.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('shutdown failed', { error: String(error) });
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  warnIfFewDescriptors(() => readFileSync('/proc/self/limits', 'utf8'), config.limits, log);
  // Only now: a signal that comes before its handler kills the process outright, without a graceful stop.
  log.info('ready', { version: VERSION });
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error), 1));
