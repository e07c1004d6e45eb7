import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MALFORMED_EVENT, standInForMalformedEvent } from '../../coordinator/socket/event-packets.ts';
import { CLIENT_EVENT_PARSERS, CLIENT_EVENTS, isClientEvent, isSecAggEvent } from '../../core/protocol/client-events.ts';
import { ErrorCode, ProtocolError } from '../../core/protocol/errors.ts';

describe('the client event table', () => {
  it('lists every participant event once, secure aggregation ones marked', () => {
    assert.deepEqual([...CLIENT_EVENTS].sort(), [
      'decline',
      'join',
      'model:frozen',
      'progress',
      'secagg:advertise',
      'secagg:masked',
      'secagg:shares',
      'secagg:unmask',
      'update',
    ]);
    assert.deepEqual(CLIENT_EVENTS.filter(isSecAggEvent), ['secagg:advertise', 'secagg:shares', 'secagg:masked', 'secagg:unmask']);
    for (const name of ['round:end', 'toString', '__proto__', 'constructor', 42, null])
      assert.equal(isClientEvent(name), false, String(name));
  });

  it('model:frozen names frozen weights by a SHA-256 hex digest, nothing else', () => {
    const hash = 'ab'.repeat(32);
    assert.deepEqual(CLIENT_EVENT_PARSERS['model:frozen']({ hash }), { hash });
    for (const bad of [{}, { hash: 'AB'.repeat(32) }, { hash: `${hash}0` }, { hash: '../etc/passwd' }, 'x'])
      assert.throws(
        () => CLIENT_EVENT_PARSERS['model:frozen'](bad),
        (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.BadPayload,
      );
  });

  it('trainMs is optional (participants leave it out under DP) but must be finite when sent', () => {
    const update = { round: 1, baseVersion: 0, numExamples: 5, update: new Uint8Array(16) };
    assert.equal(CLIENT_EVENT_PARSERS.update(update).trainMs, undefined);
    assert.equal(CLIENT_EVENT_PARSERS.update({ ...update, trainMs: 12.5 }).trainMs, 12.5);
    assert.throws(
      () => CLIENT_EVENT_PARSERS.update({ ...update, trainMs: 'fast' }),
      (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.BadPayload && /update\.trainMs/.test(e.message),
    );
  });
});

describe('malformed event packets', () => {
  const standIn = (packet: string) => {
    const out = standInForMalformedEvent(packet);
    return out === undefined
      ? undefined
      : { head: out.slice(0, out.indexOf('[')), data: JSON.parse(out.slice(out.indexOf('['))) as unknown[] };
  };

  it('keeps namespace, ack id and attachment count, and names the reason', () => {
    assert.deepEqual(standIn('421["disconnect"]'.slice(1)), {
      head: '21',
      data: [MALFORMED_EVENT, '"disconnect" is a reserved event name'],
    });
    assert.deepEqual(standIn('2/admin,7[null]'), { head: '2/admin,7', data: [MALFORMED_EVENT, 'the event name is null, not a string'] });
    assert.deepEqual(standIn('51-9["update",{"round":'), { head: '51-9', data: [MALFORMED_EVENT, 'the payload is not JSON'] });
    assert.deepEqual(standIn('2{"a":1}'), {
      head: '2',
      data: [MALFORMED_EVENT, 'the payload is not an array starting with the event name'],
    });
    assert.deepEqual(standIn('23'), { head: '23', data: [MALFORMED_EVENT, 'no payload'] });
  });

  it('leaves readable events and other packet types alone', () => {
    for (const packet of ['2["join",{}]', '21[42]', '3["ack"]', '0{}', '9["x"]', '5x-["a"]'])
      assert.equal(standInForMalformedEvent(packet), undefined, packet);
  });
});
