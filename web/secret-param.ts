/**
 * Reads a secret (a token) from the page's query string and removes it from
 * the visible URL with `history.replaceState`, so it does not stay in the
 * address bar, history, bookmarks or screenshots. The value is kept in this
 * tab's sessionStorage so a reload of the tab still has it; it never leaves
 * the tab except in the socket.io handshake.
 */
export function takeSecretParam(name: string): string | undefined {
  const key = `fl-secret:${name}`;
  const value = new URLSearchParams(location.search).get(name);
  if (value === null) return sessionStorage.getItem(key) ?? undefined;
  // Drop only that parameter; the others stay exactly as they were typed.
  const kept = location.search
    .slice(1)
    .split('&')
    .filter((part) => part !== '' && paramName(part) !== name);
  history.replaceState(history.state, '', `${location.pathname}${kept.length > 0 ? `?${kept.join('&')}` : ''}${location.hash}`);
  if (value === '') {
    sessionStorage.removeItem(key);
    return undefined;
  }
  sessionStorage.setItem(key, value);
  return value;
}

function paramName(part: string): string {
  const raw = part.split('=')[0]!.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
