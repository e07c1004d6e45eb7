import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ErrorFeedback } from '../../core/compression/error-feedback.ts';
import { startTestFederation, type TestFederation } from '../helpers/federation.ts';

const CLIP = 0.05;

/**
 * The participant must compress what `privatizeUpdate` released (clipped, noised), never the raw update:
 * only then is quantisation post-processing (docs/compression.md). Every array `ErrorFeedback.encode`
 * receives is observed in the real participants of a real federation.
 */
describe('compression input is the privatized update', () => {
  let federation: TestFederation | undefined;
  const encode = ErrorFeedback.prototype.encode;
  const encodedNorms: number[] = [];
  after(async () => {
    ErrorFeedback.prototype.encode = encode;
    await federation?.close();
  });

  it('ErrorFeedback.encode gets the update clipped to the round clip norm', { timeout: 120_000 }, async () => {
    ErrorFeedback.prototype.encode = function (this: ErrorFeedback, update, compression, rounding) {
      let sum = 0;
      for (const v of update) sum += v * v;
      encodedNorms.push(Math.sqrt(sum));
      return encode.call(this, update, compression, rounding);
    };
    federation = await startTestFederation(
      [
        '--rounds',
        '2',
        '--min-clients',
        '2',
        '--round-timeout',
        '60',
        '--client-dp',
        'central',
        '--fresh-privacy-budget',
        '--client-noise-multiplier',
        '0.8',
        '--client-sample-rate',
        '1',
        '--client-clip',
        String(CLIP),
        '--expected-clients',
        '2',
        '--update-encoding',
        'int8',
        '--admin-token',
        'compression-privatized-input-admin-token',
      ],
      2,
      { totalShards: 8 },
    );
    const final = await federation.coordinator.done;
    assert.equal(final.history.length, 2);
    const uploads = federation.participants.flatMap((p) => p.events.filter((e) => e.type === 'uploaded'));
    assert.ok(uploads.length >= 2, 'participants uploaded');
    // The raw updates were larger than the clip norm, so an unclipped input to the encoder would show here.
    assert.ok(uploads.every((e) => e.type === 'uploaded' && e.clipped && e.encoding === 'int8'));
    assert.equal(encodedNorms.length, uploads.length);
    for (const norm of encodedNorms) assert.ok(norm <= CLIP * (1 + 1e-5), `encoder input norm ${norm} > clip ${CLIP}`);
  });
});
