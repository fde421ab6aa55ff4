// The protocol's codes and limits as a JavaScript module for the page (served as /static/protocol.js),
// so the page and the server share one source instead of the page restating numbers such as 4401.
import { CloseCode, ErrorCode, NoticeCode } from './codes.ts';
import { MAX_FRAME_BYTES } from './constants.ts';
import {
  FORBIDDEN_IN_NAME,
  HISTORY_MAX,
  NAME_MAX,
  PROTOCOL_VERSION,
  REASON_MAX,
  TEXT_CAP,
} from './frames.ts';

const constant = (name: string, value: unknown): string =>
  `export const ${name} = Object.freeze(${JSON.stringify(value)});`;

/** The text of /static/protocol.js. */
export function pageModule(): string {
  return [
    '// Made by the server from its protocol module: the codes and limits the page shares with it.',
    constant('CloseCode', CloseCode),
    constant('ErrorCode', ErrorCode),
    constant('NoticeCode', NoticeCode),
    `export const PROTOCOL_VERSION = ${PROTOCOL_VERSION};`,
    `export const NAME_MAX = ${NAME_MAX};`,
    `export const TEXT_CAP = ${TEXT_CAP};`,
    `export const MAX_FRAME_BYTES = ${MAX_FRAME_BYTES};`,
    `export const HISTORY_MAX = ${HISTORY_MAX};`,
    `export const REASON_MAX = ${REASON_MAX};`,
    `export const FORBIDDEN_IN_NAME = new RegExp(${JSON.stringify(FORBIDDEN_IN_NAME.source)}, ${JSON.stringify(FORBIDDEN_IN_NAME.flags)});`,
    '',
  ].join('\n');
}
