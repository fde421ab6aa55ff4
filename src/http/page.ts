// Small server-rendered HTML pages (sign-out confirmation, errors): the site's stylesheet, no script.

/** Text made safe to place in HTML. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/gu, (ch) => `&#${ch.charCodeAt(0)};`);

/** A page around `main` (already HTML), never cached. */
export function htmlPage(status: number, title: string, main: string, className = 'page'): Response {
  const body = `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title><link rel="stylesheet" href="/static/style.css"><main class="${className}">${main}</main></html>`;
  return new Response(body, {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' },
  });
}
