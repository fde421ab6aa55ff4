// The server's name and version (a test keeps this equal to package.json's version).

/** The package version. */
export const VERSION = '0.4.0';

/** Name and version as sent in welcome frames and printed by --version. */
export const SERVER_NAME = `runspec-room/${VERSION}`;
