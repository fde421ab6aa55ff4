// Writes the README's settings tables from the settings table: `npm run docs:config`. A test checks it was run.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  ACTIONS,
  SETTING_ROWS,
  type Setting,
  settingName,
  settingRange,
  VALUE_FORMS,
} from '../src/config.ts';

/** The README this script rewrites. */
export const README = fileURLToPath(new URL('../README.md', import.meta.url));

const code = (text: string): string => `\`${text}\``;
const cell = (text: string): string => text.replaceAll('|', '\\|');
const row = (cells: string[]): string => `|${cells.map((text) => (text ? ` ${text} ` : ' ')).join('|')}|`;
const either = (words: readonly string[]): string =>
  `${words.slice(0, -1).map(code).join(', ')} or ${code(words.at(-1) ?? '')}`;

function meaning(setting: Setting): string {
  const range = settingRange(setting);
  const text = setting.doc ?? setting.help;
  return cell(range ? `${text}; accepts ${code(range.min)} to ${code(range.max)}` : text);
}

const defaultOf = (setting: Setting): string =>
  setting.default === undefined ? '' : cell(code(setting.default));

const NOTE = '<!-- Written by `npm run docs:config` from src/config/settings.ts: edit the table there. -->';

function configurationTable(rows: readonly Setting[]): string[] {
  const { durationUnits, durationExamples, switchOn, switchOff } = VALUE_FORMS;
  return [
    NOTE,
    `Durations are a whole number and a unit, ${either(durationUnits)} (${durationExamples.map(code).join(', ')}).`,
    `Switches are ${either(switchOn)}, or ${either(switchOff)}.`,
    '',
    row(['flag', 'environment', 'default', 'meaning']),
    row(['---', '---', '---', '---']),
    ...rows.map((setting) =>
      row([
        setting.flag ? cell(code(settingName(setting))) : '',
        setting.env ? code(setting.env) : '',
        defaultOf(setting),
        meaning(setting),
      ]),
    ),
    ...ACTIONS.map(({ flag, short, doc }) => row([`${code(flag)}, ${code(short)}`, '', '', doc])),
  ];
}

function limitsTable(rows: readonly Setting[]): string[] {
  return [
    NOTE,
    row(['environment', 'default', 'what happens past it']),
    row(['---', '---', '---']),
    ...rows.map((setting) => row([code(setting.env ?? ''), defaultOf(setting), meaning(setting)])),
  ];
}

function replaceBlock(readme: string, name: string, lines: string[]): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no ${start} … ${end} block`);
  return `${readme.slice(0, from + start.length)}\n${lines.join('\n')}\n${readme.slice(to)}`;
}

/** The README with its Configuration and Limits tables written from the settings table. */
export function withSettingsTables(readme: string): string {
  const rows = SETTING_ROWS;
  const configuration = configurationTable(rows.filter((setting) => setting.table === 'configuration'));
  const limits = limitsTable(rows.filter((setting) => setting.table === 'limits'));
  return replaceBlock(replaceBlock(readme, 'settings', configuration), 'limits', limits);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const before = await readFile(README, 'utf8');
  const after = withSettingsTables(before);
  if (after !== before) await writeFile(README, after);
  process.stdout.write(after === before ? 'README.md is up to date\n' : 'README.md rewritten\n');
}
