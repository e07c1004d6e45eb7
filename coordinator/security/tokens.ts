import { createHash, timingSafeEqual } from 'node:crypto';

/** Tokens shorter than this are refused: they could be guessed. */
export const MIN_TOKEN_LENGTH = 16;
/** Longer presented tokens are refused before hashing. */
const MAX_TOKEN_LENGTH = 4096;

/** The SHA-256 digest a token is kept as. */
export function tokenDigest(token: string): Buffer {
  return digest(token);
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * A set of secret tokens, checked in constant time: the presented token and
 * every known one are compared as SHA-256 digests with `timingSafeEqual`, so
 * neither the length of a token nor the position of the first differing
 * character shows in the timing, and every known token is compared every
 * time. The tokens themselves are not kept, only their digests, and nothing
 * here ever prints one.
 */
export class TokenSet {
  private readonly digests: Buffer[];

  /** The tokens themselves, or (`{ digests }`) only their SHA-256 digests, as a credentials file keeps them. */
  constructor(tokens: Iterable<string> | { readonly digests: readonly Buffer[] }) {
    if ('digests' in tokens) {
      if (tokens.digests.some((d) => d.length !== 32)) throw new Error('a token digest is 32 bytes (SHA-256)');
      this.digests = [...tokens.digests];
    } else {
      this.digests = [...new Set(tokens)].map(digest);
    }
    if (this.digests.length === 0) throw new Error('a token set needs at least one token');
  }

  /** This set plus one more token. */
  with(token: string): TokenSet {
    const set = new TokenSet([token]);
    set.digests.push(...this.digests);
    return set;
  }

  /** How many tokens (a count is safe to print). */
  get size(): number {
    return this.digests.length;
  }

  /** True when `candidate` is a string equal to one of the tokens. */
  matches(candidate: unknown): boolean {
    return this.indexOf(candidate) >= 0;
  }

  /** The position of `candidate` among the tokens (in the order given), or -1. */
  indexOf(candidate: unknown): number {
    if (typeof candidate !== 'string' || candidate.length === 0 || candidate.length > MAX_TOKEN_LENGTH) return -1;
    const presented = digest(candidate);
    let found = -1;
    for (let i = 0; i < this.digests.length; i++) {
      // No early exit: the time does not depend on which token matched.
      if (timingSafeEqual(presented, this.digests[i]!)) found = i;
    }
    return found;
  }

  /** True when some token of `other` is also in this set. */
  overlaps(other: TokenSet): boolean {
    return other.digests.some((d) => this.digests.some((mine) => timingSafeEqual(d, mine)));
  }
}

/** Why a token is unusable, or undefined when it is fine. The token itself is never part of the text. */
export function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `is ${token.length} characters long, shorter than the minimum of ${MIN_TOKEN_LENGTH}`;
  if (token.length > MAX_TOKEN_LENGTH) return `is longer than ${MAX_TOKEN_LENGTH} characters`;
  if (/\s/.test(token)) return 'contains white space';
  return undefined;
}

/**
 * Parses a token file: one token per line; blank lines and lines whose first
 * non-blank character is `#` are ignored, and a token may be followed by a
 * comment (`TOKEN  # alice's laptop`). Throws an Error naming the file and
 * line of a bad token, never the token.
 */
export function parseTokenFile(text: string, source: string): string[] {
  const tokens: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    const token = match[1]!;
    const rest = match[2];
    if (rest !== undefined && !rest.startsWith('#')) {
      throw new Error(`${source}:${i + 1}: one token per line (white space is only allowed before a # comment)`);
    }
    const problem = tokenProblem(token);
    if (problem) throw new Error(`${source}:${i + 1}: the token ${problem}`);
    tokens.push(token);
  }
  if (tokens.length === 0) throw new Error(`${source} holds no token (one per line; # starts a comment)`);
  return tokens;
}
