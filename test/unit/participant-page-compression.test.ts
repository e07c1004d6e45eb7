import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { frameBytes } from '../../core/compression/update-codec.ts';
import type { TaskSummary } from '../../core/protocol/messages.ts';
import { compressedText, sentStatement } from '../../web/participant/task-text.ts';

describe('participant page: what leaves this device, compressed', () => {
  it('names the encoding and the bytes before compression of a compressed update', () => {
    const after = frameBytes('int8', 101_770);
    const before = frameBytes('float32', 101_770);
    assert.equal(compressedText(after, 'int8', before), ` as int8 (${before.toLocaleString()} bytes before compression, 0.25×)`);
    assert.equal(compressedText(before, 'float32', before), '');
    assert.equal(compressedText(before, undefined, undefined), '');
  });

  it('says before any round that updates may be compressed, with the smallest size', () => {
    const task = { paramCount: 101_770 } as TaskSummary;
    assert.match(sentStatement(task), /compressed .* as little as 52,816 bytes/);
  });
});
