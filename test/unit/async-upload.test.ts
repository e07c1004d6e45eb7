import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode } from '../../core/protocol/errors.ts';
import type { UpdateMessage } from '../../core/protocol/messages.ts';
import { encodeFrame, FrameKind } from '../../core/wire/frame.ts';
import { checkAsyncUpload, type UploadBasis } from '../../coordinator/rounds/async-upload.ts';

/** The checks both async intakes run on an upload (one process's pool, a cluster node's), in their order. */

const basis: UploadBasis = { appliesTo: 10, maxStaleness: 3, encoding: 'float32', updateLength: 4 };
const slot = { round: 7, baseVersion: 8, startedAt: 1234 };
const message = (over: Partial<UpdateMessage> = {}): UpdateMessage => ({
  round: 7,
  baseVersion: 8,
  numExamples: 10,
  metrics: { loss: 1, accuracy: 0.5 },
  trainMs: 1,
  update: encodeFrame(FrameKind.Update, new Float32Array([1, 2, 3, 4])),
  ...over,
});
const codeOf = (upload: ReturnType<typeof checkAsyncUpload>) =>
  upload.kind !== 'usable' && !upload.refusal.ok ? upload.refusal.error.code : undefined;

test('a usable upload gives its values and the slot it answers', () => {
  const upload = checkAsyncUpload(slot, message(), basis);
  assert.equal(upload.kind, 'usable');
  assert.ok(upload.kind === 'usable');
  assert.deepEqual([...upload.update], [1, 2, 3, 4]);
  assert.equal(upload.norm, Math.sqrt(30), 'the norm from the decode, passed on so nothing reads the update again for it');
  assert.equal(upload.slot, slot);
});

test('no slot, or a slot of another round: NOT_SELECTED, before anything else is read', () => {
  for (const [held, sent] of [
    [undefined, message()],
    [slot, message({ round: 6, baseVersion: 1, update: new ArrayBuffer(3) })],
  ] as const) {
    const upload = checkAsyncUpload(held, sent, basis);
    assert.equal(upload.kind, 'no-slot');
    assert.equal(codeOf(upload), ErrorCode.NotSelected);
  }
});

test('trained from another model than its slot handed out: STALE_MODEL, unusable', () => {
  const upload = checkAsyncUpload(slot, message({ baseVersion: 9 }), basis);
  assert.equal(upload.kind, 'unusable');
  assert.equal(codeOf(upload), ErrorCode.StaleModel);
});

test('staler than S: UPDATE_TOO_STALE, checked before the frame is decoded; with no version open, no staleness yet', () => {
  const old = { ...slot, baseVersion: 6 };
  const stale = checkAsyncUpload(old, message({ baseVersion: 6, update: new ArrayBuffer(3) }), basis);
  assert.equal(stale.kind, 'too-stale');
  assert.equal(codeOf(stale), ErrorCode.UpdateTooStale);
  assert.equal(checkAsyncUpload(old, message({ baseVersion: 6 }), { ...basis, appliesTo: undefined }).kind, 'usable');
  assert.equal(checkAsyncUpload(old, message({ baseVersion: 6 }), { ...basis, appliesTo: 9 }).kind, 'usable');
});

test("an unreadable frame or one of the wrong length: unusable, with the decoder's code", () => {
  const short = checkAsyncUpload(slot, message({ update: encodeFrame(FrameKind.Update, new Float32Array(3)) }), basis);
  assert.equal(short.kind, 'unusable');
  assert.equal(codeOf(short), ErrorCode.WrongLength);
  const nonFinite = checkAsyncUpload(
    slot,
    message({ update: encodeFrame(FrameKind.Update, new Float32Array([1, Number.NaN, 3, 4])) }),
    basis,
  );
  assert.equal(codeOf(nonFinite), ErrorCode.NonFinite);
});
