// Flags and environment → one validated, frozen configuration, read through the settings table. Nothing else reads the environment.
import { parseArgs } from 'node:util';
import * as v from 'valibot';
import { ACTIONS, LOOPBACK, RETIRED, SETTING_ROWS, SETTINGS, type Setting } from './config/settings.ts';
import { DURATION_UNITS, isLoopback, SWITCH_WORDS } from './config/values.ts';

export { ACTIONS, SETTING_ROWS, SETTINGS, type Setting } from './config/settings.ts';

/** A configuration problem, reported as one line before the server exits. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Settings = typeof SETTINGS;
type Key = keyof Settings;
type Output<K extends Key> = v.InferOutput<Settings[K]['schema']>;
/** A setting's value; undefined only for a setting without a default that was not given. */
type Value<K extends Key> = Settings[K] extends { default: string } ? Output<K> : Output<K> | undefined;
type Values = { readonly [K in Key]: Value<K> };
type LimitKey = { [K in Key]: Settings[K]['table'] extends 'limits' ? K : never }[Key];

/** Bounds that keep one client from hurting the others; each has an environment variable. */
export type Limits = Readonly<Pick<Values, LimitKey>>;

/** Sign-in (OIDC) and session settings, all from the environment. */
export interface AuthConfig {
  readonly issuer: string | undefined;
  readonly metadataUrl: string | undefined;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  /** Allow a plain-http issuer on a loopback address (local development). */
  readonly allowHttp: boolean;
  readonly sessionSecret: string;
  /** Origin of CONSOLE_ROOM_PUBLIC_URL: redirect URI base, cookie security, Origin checks. */
  readonly publicOrigin: string;
  readonly sessionIdleSeconds: number;
  readonly sessionMaxSeconds: number;
}

/** The validated settings the server runs with. */
export type Config = Readonly<
  Pick<
    Values,
    | 'host'
    | 'port'
    | 'ndjsonPort'
    | 'db'
    | 'dbAuthToken'
    | 'redis'
    | 'ndjsonOnly'
    | 'logLevel'
    | 'metricsPort'
    | 'metricsHost'
    | 'retentionSeconds'
    | 'commitDelayMs'
    | 'dbStatementTimeoutMs'
  > & {
    /** Always the loopback address: the console door trusts whoever can connect. */
    ndjsonHost: string;
    tls: { certFile: string; keyFile: string } | undefined;
    /** Addresses/CIDRs (or "loopback") whose forwarding headers are believed. */
    trustProxy: readonly string[];
    /** Dev mode: origins whose pages may use the browser door besides its own. */
    allowedOrigins: readonly string[];
    /** Sign-in settings; undefined means dev mode. */
    auth: AuthConfig | undefined;
    /** Whether consoles must prove a key. */
    consoleAuth: Values['consoleAuth'];
    /** Names that may act as admins once proven. */
    admins: readonly string[];
    limits: Limits;
    /** Settings that were given but are no longer read, said once at start-up. */
    warnings: readonly string[];
  }
>;

/** What the command line asks for. */
export type Command = { kind: 'run'; config: Config } | { kind: 'help' } | { kind: 'version' };

type Flags = Readonly<Record<string, string | boolean | undefined>>;
type Env = Readonly<Record<string, string | undefined>>;

const KEYS = Object.keys(SETTINGS) as Key[];
const row = (key: Key): Setting => SETTINGS[key];
const LIMIT_KEYS = KEYS.filter((key): key is LimitKey => row(key).table === 'limits');
const nameOf = (key: Key): string => row(key).env ?? row(key).flag ?? key;

/** One setting's value: the flag, else the environment variable, else the default, through its schema. */
function read<K extends Key>(key: K, flags: Flags, env: Env): Value<K> {
  const setting = row(key);
  const fromFlag = setting.flag && flags[setting.flag.slice(2)];
  const fromEnv = setting.env && env[setting.env]?.trim();
  let text: string;
  let source: string;
  if (fromFlag !== undefined) {
    text = fromFlag === true ? SWITCH_WORDS.on[0] : String(fromFlag).trim();
    source = setting.flag as string;
  } else if (fromEnv) {
    text = fromEnv;
    source = setting.env as string;
  } else if (setting.default !== undefined) {
    text = setting.default;
    source = `the default of ${nameOf(key)}`;
  } else {
    return undefined as Value<K>;
  }
  const result = v.safeParse(setting.schema, text);
  if (!result.success) {
    const shown = setting.secret ? '' : ` ${JSON.stringify(text)}`;
    throw new ConfigError(`${source}${shown}: ${result.issues[0].message}`);
  }
  return result.output as Value<K>;
}

/** One setting for a subcommand: from its flags (by long name, without dashes), else the environment, else the default. */
export const readSetting: <K extends Key>(key: K, flags: Flags, env: Env) => Value<K> = read;

const limitsFrom = (limit: (key: LimitKey) => number): Limits =>
  Object.freeze(Object.fromEntries(LIMIT_KEYS.map((key) => [key, limit(key)]))) as Limits;

/** The limits when no environment variable sets them: the table's defaults. */
export const DEFAULT_LIMITS: Limits = limitsFrom((key) => read(key, {}, {}));

const FLAG_OPTIONS = Object.fromEntries([
  ...KEYS.flatMap((key) => {
    const { flag, arg } = row(key);
    return flag ? [[flag.slice(2), { type: arg ? 'string' : 'boolean' }] as const] : [];
  }),
  ...ACTIONS.map(({ flag, short }) => [flag.slice(2), { type: 'boolean', short: short.slice(1) }] as const),
]);

/** Parse flags and environment. Throws ConfigError with a one-line reason on bad input. */
export function parseCommand(argv: readonly string[], env: Env): Command {
  let flags: Flags;
  try {
    ({ values: flags } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: FLAG_OPTIONS,
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(`${message} (see --help)`);
  }
  if (flags.help) return { kind: 'help' };
  if (flags.version) return { kind: 'version' };

  const values = Object.fromEntries(KEYS.map((key) => [key, read(key, flags, env)])) as Values;
  const { tlsCert, tlsKey } = values;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    const { tlsCert: cert, tlsKey: key } = SETTINGS;
    throw new ConfigError(`${cert.flag} and ${key.flag} (${cert.env} / ${key.env}) go together`);
  }
  if (values.redis !== undefined && !/^postgres(ql)?:\/\//iu.test(values.db)) {
    const { redis, db } = SETTINGS;
    throw new ConfigError(
      `${redis.flag} (${redis.env}) joins a cluster, whose nodes share one database: ${db.flag} must be a postgres:// URL`,
    );
  }
  const config: Config = {
    host: values.host,
    port: values.port,
    ndjsonHost: LOOPBACK,
    ndjsonPort: values.ndjsonPort,
    db: values.db,
    dbAuthToken: values.dbAuthToken,
    redis: values.redis,
    ndjsonOnly: values.ndjsonOnly,
    logLevel: values.logLevel,
    metricsPort: values.metricsPort,
    metricsHost: values.metricsHost,
    retentionSeconds: values.retentionSeconds,
    commitDelayMs: values.commitDelayMs,
    dbStatementTimeoutMs: values.dbStatementTimeoutMs,
    tls: tlsCert && tlsKey ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
    trustProxy: values.trustProxy,
    allowedOrigins: values.allowedOrigins ?? [],
    auth: signIn(values),
    consoleAuth: values.consoleAuth,
    admins: values.admins ?? [],
    limits: limitsFrom((key) => values[key]),
    warnings: RETIRED.filter(([name]) => env[name]).map(([name, why]) => `${name} is no longer read: ${why}`),
  };
  return { kind: 'run', config: Object.freeze(config) };
}

/** The settings that turn sign-in on: with any of them set, all must be (the issuer or its metadata URL). */
const SIGN_IN = [
  'issuer',
  'metadataUrl',
  'clientId',
  'clientSecret',
  'sessionSecret',
  'publicOrigin',
] as const;

/** The issuer and metadata URL must be https; plain http only on loopback, and only when allowed. */
function checkProviderUrl(key: 'issuer' | 'metadataUrl', text: string, allowHttp: boolean): void {
  const url = new URL(text);
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && allowHttp && isLoopback(url.hostname)) return;
  const why =
    url.protocol === 'http:' && allowHttp
      ? 'plain http is only allowed for a loopback address'
      : 'must be an https URL';
  throw new ConfigError(`${nameOf(key)} ${JSON.stringify(text)}: ${why}`);
}

/** Sign-in settings: undefined in dev mode (none set); a ConfigError when only some are set. */
function signIn(values: Values): AuthConfig | undefined {
  const present = SIGN_IN.filter((key) => values[key] !== undefined);
  if (present.length === 0) return undefined;
  const { issuer, metadataUrl, clientId, clientSecret, sessionSecret, publicOrigin, allowHttp } = values;
  if (
    (issuer === undefined && metadataUrl === undefined) ||
    clientId === undefined ||
    clientSecret === undefined ||
    sessionSecret === undefined ||
    publicOrigin === undefined
  ) {
    const [first, second, ...rest] = SIGN_IN;
    const missing = [
      ...(issuer === undefined && metadataUrl === undefined
        ? [`${nameOf(first)} (or ${nameOf(second)})`]
        : []),
      ...rest.filter((key) => values[key] === undefined).map(nameOf),
    ];
    throw new ConfigError(
      `sign-in is half configured (${present.map(nameOf).join(', ')} set); missing: ${missing.join(', ')}`,
    );
  }
  if (issuer !== undefined) checkProviderUrl('issuer', issuer, allowHttp);
  if (metadataUrl !== undefined) checkProviderUrl('metadataUrl', metadataUrl, allowHttp);
  return Object.freeze({
    issuer,
    metadataUrl,
    clientId,
    clientSecret,
    scopes: values.scopes,
    allowHttp,
    sessionSecret,
    publicOrigin,
    sessionIdleSeconds: values.sessionIdleSeconds,
    sessionMaxSeconds: values.sessionMaxSeconds,
  });
}

/** How a setting is written on the command line or in the environment, e.g. `--port PORT`. */
export function settingName(setting: Setting): string {
  if (!setting.flag) return setting.env ?? '';
  return setting.arg ? `${setting.flag} ${setting.arg}` : setting.flag;
}

/** The smallest and largest value a setting accepts, where its parser bounds them (durations). */
export function settingRange(setting: Setting): { min: string; max: string } | undefined {
  return (v.getMetadata(setting.schema) as { range?: { min: string; max: string } }).range;
}

/** How durations and switches are written, for --help and the README. */
export const VALUE_FORMS = {
  durationUnits: Object.keys(DURATION_UNITS),
  durationExamples: ['500ms', '90s', '30m', '12h', '7d'],
  switchOn: SWITCH_WORDS.on,
  switchOff: SWITCH_WORDS.off,
} as const;

/** The --help text: flags (with the environment variable each one can come from), then the rest. */
export function helpText(): string {
  const rows = SETTING_ROWS;
  const flagged = rows.filter((setting) => setting.flag);
  const envOnly = rows.filter((setting) => !setting.flag);
  const actions = ACTIONS.map(({ flag, short, help }) => ({ name: `${short}, ${flag}`, help }));
  const width = Math.max(...[...rows.map(settingName), ...actions.map((a) => a.name)].map((n) => n.length));
  const line = (name: string, help: string, notes: Array<string | undefined> = []): string => {
    const extra = notes.filter(Boolean).join(', ');
    return `  ${name.padEnd(width)}  ${help}${extra ? ` (${extra})` : ''}`;
  };
  const notes = (setting: Setting, withEnv: boolean): Array<string | undefined> => {
    const range = settingRange(setting);
    return [
      withEnv && setting.env ? `env ${setting.env}` : undefined,
      setting.default === undefined ? undefined : `default ${setting.default}`,
      range && `${range.min} to ${range.max}`,
    ];
  };
  const { durationUnits, durationExamples, switchOn, switchOff } = VALUE_FORMS;
  const lines = [
    'Usage: runspec-room [options]',
    '',
    'A chat-room server for browsers and command-line consoles.',
    '',
    'Options (flags win over the environment variable named with each):',
    ...flagged.map((setting) => line(settingName(setting), setting.help, notes(setting, true))),
    ...actions.map((action) => line(action.name, action.help)),
    '',
    'Environment only (secrets and tuning):',
    ...envOnly.map((setting) => line(settingName(setting), setting.help, notes(setting, false))),
    '',
    `Durations are a whole number and a unit: ${durationUnits.join(', ')} (${durationExamples.join(', ')}).`,
    `Switches are ${switchOn.join('/')} or ${switchOff.join('/')}.`,
  ];
  return `${lines.join('\n')}\n`;
}
