import { randomBytes } from 'node:crypto';
import { TokenSet } from './tokens.ts';

/** Per-participant rejoin secrets, kept as digests and compared in constant time (TokenSet). */
export class RejoinSecrets {
  private readonly secrets = new Map<string, TokenSet>();

  issue(participantId: string): string {
    const secret = randomBytes(32).toString('hex');
    this.secrets.set(participantId, new TokenSet([secret]));
    return secret;
  }

  matches(participantId: string, secret: string | undefined): boolean {
    return this.secrets.get(participantId)?.matches(secret) ?? false;
  }

  /** The engine forgot this participant: its id will not be given back. */
  forget(participantId: string): void {
    this.secrets.delete(participantId);
  }
}
