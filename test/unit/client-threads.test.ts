import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJoinRequest } from '../../core/protocol/validate.ts';

/** ClientInfo.threads: the WASM threads a participant really uses, shown in its status. */
describe('join request: threads', () => {
  const join = (client: Record<string, unknown>) =>
    parseJoinRequest({ protocolVersion: 1, client: { backend: 'wasm', numExamples: 10, ...client } });

  it('keeps a thread count and leaves it out when absent', () => {
    assert.equal(join({ threads: 2 }).client.threads, 2);
    assert.equal(join({}).client.threads, undefined);
  });

  it('rejects a count that is not an integer from 1 to 1024', () => {
    for (const threads of [0, -1, 1.5, 1025, '2']) assert.throws(() => join({ threads }), /join\.client\.threads/);
  });
});
