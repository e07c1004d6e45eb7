import { isPositiveInt } from '../flags.ts';
import { booleanOption, numberOption, textOption, type OptionGroup } from './option.ts';

/** Access control, TLS and limits; coordinator/security/config.ts reads them (parseSecurityConfig). */

export const JOIN_TOKEN = textOption({ name: 'join-token', placeholder: 'T', help: 'participants must present token T (16+ characters)' });
export const JOIN_TOKEN_FILE = textOption({
  name: 'join-token-file',
  placeholder: 'F',
  help: '...or one of the tokens in F (one per line, # comments; both may be given)',
});
export const OPEN = booleanOption({
  name: 'open',
  help: 'no join token: anyone who can reach the port may join (the default,\nwith a warning, when no join token is given)',
});
export const ADMIN_TOKEN = textOption({
  name: 'admin-token',
  placeholder: 'T',
  help: 'the dashboard, /api/status and admin routes need token T',
});
export const ADMIN_TOKEN_FILE = textOption({
  name: 'admin-token-file',
  placeholder: 'F',
  help: '...or one of the tokens in F (without one: dashboard open, read-only)',
});
export const TLS_CERT = textOption({ name: 'tls-cert', placeholder: 'FILE', help: 'serve HTTPS and WSS with this PEM certificate...' });
export const TLS_KEY = textOption({ name: 'tls-key', placeholder: 'FILE', help: '...and this PEM private key (both needed)' });
export const ALLOWED_ORIGINS = textOption({
  name: 'allowed-origins',
  placeholder: 'A,B',
  help: "web origins allowed besides the coordinator's own (e.g.\nhttps://lab.example.org; * allows any)",
});
/** Sustained messages per second per connection. */
export const RATE_LIMIT = numberOption({
  name: 'rate-limit',
  placeholder: 'N',
  default: 50,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'messages per second per connection (default {default}, bursts of 2N)',
});
export const MAX_CONNECTIONS = numberOption({
  name: 'max-connections',
  placeholder: 'N',
  default: 1000,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'connections at once (default {default}); only authenticated ones count',
});
export const CREDENTIALS = textOption({
  name: 'credentials',
  placeholder: 'FILE',
  help: 'per-participant credentials (made and revoked with "npm run tokens"; see\ndocs/admission.md); re-read when the file changes',
});
/** A participant's tab plus one reconnect whose old connection has not timed out yet. */
export const MAX_CONNECTIONS_PER_CREDENTIAL = numberOption({
  name: 'max-connections-per-credential',
  placeholder: 'N',
  default: 2,
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'connections one credential may hold (default {default})',
});
export const MAX_CONNECTIONS_PER_IP = numberOption({
  name: 'max-connections-per-ip',
  placeholder: 'N',
  check: isPositiveInt,
  expected: 'a positive integer',
  help: 'authenticated connections from one address (default: a quarter of\n--max-connections, at least 64)',
});
/** Seconds. Long enough to rejoin after a network blip or a reload (ping timeout is 45 s); short enough that churn cannot pile up. */
export const PARTICIPANT_GRACE = numberOption({
  name: 'participant-grace',
  placeholder: 'S',
  default: 120,
  check: (v) => v >= 0 && v <= 86_400,
  expected: 'a number of seconds in [0, 86400]',
  help: 'forget a participant that left without contributing after S seconds\n(default {default})',
});

export const SECURITY_GROUP: OptionGroup = {
  heading: 'Access, TLS and limits (see docs/security.md)',
  options: [
    JOIN_TOKEN,
    JOIN_TOKEN_FILE,
    OPEN,
    ADMIN_TOKEN,
    ADMIN_TOKEN_FILE,
    TLS_CERT,
    TLS_KEY,
    ALLOWED_ORIGINS,
    RATE_LIMIT,
    MAX_CONNECTIONS,
    CREDENTIALS,
    MAX_CONNECTIONS_PER_CREDENTIAL,
    MAX_CONNECTIONS_PER_IP,
    PARTICIPANT_GRACE,
  ],
};
