import assert from 'node:assert/strict';
import type { SecAggOutbound } from '../../coordinator/rounds/secure-round.ts';
import { EngineHarness } from './engine-harness.ts';

/** The engine harness plus what the round sent each participant for secure aggregation. */
export class SecureHarness extends EngineHarness {
  readonly outbox: { participantId: string; out: SecAggOutbound }[] = [];

  sendSecAgg(participantId: string, out: SecAggOutbound): void {
    this.outbox.push({ participantId, out });
  }

  /** The round's core steps run on WebCrypto: waits (bounded) until `ready` holds. */
  async until(ready: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 2000 && !ready(); i++) {
      this.clock.advance(0);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assert.ok(ready(), `timed out waiting for ${what}`);
  }

  sent(event: SecAggOutbound['event']): Map<string, SecAggOutbound['message']> {
    return new Map(this.outbox.filter((o) => o.out.event === event).map((o) => [o.participantId, o.out.message]));
  }
}
